//! Checks for the configuration defects a review of `tofu/` against AWS's documentation found
//! (issue 10, section 1b): trust policies API Gateway can satisfy, KMS access through DynamoDB,
//! tagging rights the deploy role really gets, the deploy role's trust, the prod variables both
//! workflows apply, bucket names within S3's limit, and error bodies that stay valid JSON.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::Expression;
use support::{
    attr, blocks, describe, family_statements, labelled, literals, policy_statements, read,
    repo_root, string_value, tf_file, tf_files, walk_code,
};

/// The string literals of an `actions`-like array attribute.
fn literal_list(body: &hcl::Body, key: &str) -> Vec<String> {
    match attr(body, key) {
        Some(Expression::Array(items)) => items.iter().filter_map(string_value).collect(),
        _ => Vec::new(),
    }
}

/// `(variable, values)` of a statement's `condition` blocks; templates become their literal text
/// with `${...}` in place of each interpolation.
fn conditions(statement: &hcl::Body) -> Vec<(String, Vec<String>)> {
    blocks(statement, "condition")
        .map(|condition| {
            let variable = attr(&condition.body, "variable")
                .map(render)
                .unwrap_or_default();
            let values = match attr(&condition.body, "values") {
                Some(Expression::Array(items)) => items.iter().map(render).collect(),
                _ => Vec::new(),
            };
            (variable, values)
        })
        .collect()
}

/// A string literal or template as text, `${...}` standing for each interpolation.
fn render(expr: &Expression) -> String {
    if let Some(text) = string_value(expr) {
        return text;
    }
    match support::template(expr) {
        Some(template) => template
            .elements()
            .iter()
            .map(|element| match element {
                hcl::template::Element::Literal(text) => text.clone(),
                _ => "${...}".to_string(),
            })
            .collect(),
        None => "${...}".to_string(),
    }
}

/// The policy document `NAME` of a file.
fn policy_document<'a>(file: &'a support::TfFile, name: &str) -> &'a hcl::Block {
    labelled(&file.body, "data", &["aws_iam_policy_document", name])
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{}: data \"aws_iam_policy_document\" \"{name}\"", file.path))
}

// --- trust policies -----------------------------------------------------------------------------

/// API Gateway does not set aws:SourceAccount/aws:SourceArn when it assumes an integration's
/// credentials role, so such a condition makes every call answer 500.
#[test]
fn no_api_gateway_trust_policy_uses_source_conditions() {
    let mut trusts = 0;
    for file in tf_files() {
        for document in labelled(&file.body, "data", &["aws_iam_policy_document"]) {
            for statement in policy_statements(document) {
                let trusts_api_gateway = blocks(statement, "principals").any(|principals| {
                    literal_list(&principals.body, "identifiers")
                        .iter()
                        .any(|identifier| identifier == "apigateway.amazonaws.com")
                });
                if !trusts_api_gateway {
                    continue;
                }
                trusts += 1;
                for (variable, _) in conditions(statement) {
                    assert!(
                        !["aws:SourceAccount", "aws:SourceArn"].contains(&variable.as_str()),
                        "{}: {}: API Gateway does not set {variable} when it assumes a role",
                        file.path,
                        describe(document)
                    );
                }
            }
        }
    }
    assert!(
        trusts >= 1,
        "expected the API Gateway trust policy of the integration and logging roles, found {trusts}"
    );
    // Both API Gateway roles use that one document.
    let api = read("tofu/modules/ingestion_api/main.tf");
    let trusting = api
        .lines()
        .filter(|line| {
            line.trim_start().starts_with("assume_role_policy")
                && line
                    .trim_end()
                    .ends_with("= data.aws_iam_policy_document.apigateway_assume.json")
        })
        .count();
    assert_eq!(
        trusting, 2,
        "the integration (kinesis) and logging (cloudwatch) roles must both trust apigateway_assume"
    );
}

/// Only jobs in the GitHub environment (and so behind its reviewers) may assume the deploy role.
#[test]
fn the_deploy_role_trusts_only_the_deploy_environment() {
    let file = tf_file("tofu/modules/ci_access/roles.tf");
    // One trust document per role, `for_each` over local.trusted_subjects, whose `:sub`
    // condition is that role's subject.
    let document = policy_document(&file, "trust");
    let subject_values: Vec<&Expression> = policy_statements(document)
        .into_iter()
        .flat_map(|statement| blocks(statement, "condition"))
        .filter(|condition| {
            attr(&condition.body, "variable")
                .is_some_and(|variable| render(variable).ends_with(":sub"))
        })
        .filter_map(|condition| match attr(&condition.body, "values") {
            Some(Expression::Array(items)) => Some(items),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        matches!(subject_values.as_slice(), [value] if support::is_traversal(value, &["each", "value"])),
        "the trust document's :sub condition must be exactly [each.value], got {subject_values:?}"
    );
    assert!(
        attr(&document.body, "for_each").is_some_and(|for_each| support::is_traversal(
            for_each,
            &["local", "trusted_subjects"]
        )),
        "the trust document must be made for each of local.trusted_subjects"
    );
    let locals = file.locals();
    let Some(Expression::Object(trusted)) = locals.get("trusted_subjects").copied() else {
        panic!("{}: local.trusted_subjects must be an object", file.path);
    };
    let subjects: Vec<String> = trusted
        .iter()
        .filter(|(key, _)| support::object_key(key).as_deref() == Some("deploy"))
        .map(|(_, value)| render(value))
        .collect();
    assert_eq!(
        subjects.len(),
        1,
        "trusted_subjects must have exactly one deploy subject, got {subjects:?}"
    );
    assert!(
        subjects[0].starts_with("repo:") && subjects[0].contains(":environment:"),
        "trust_deploy must trust repo:<owner>/<repo>:environment:<name>, got {}",
        subjects[0]
    );
    assert!(
        !subjects[0].contains(":ref:"),
        "trust_deploy must not trust a branch"
    );
    // The deploy workflow runs in that environment, or it could not assume the role.
    let deploy = read(".github/workflows/deploy.yml");
    assert!(
        deploy.contains("AWS_DEPLOY_ROLE_ARN") && deploy.contains("environment: prod"),
        ".github/workflows/deploy.yml must assume the deploy role from `environment: prod`"
    );
    assert!(
        !read(".github/workflows/ci.yml").contains("AWS_DEPLOY_ROLE_ARN"),
        ".github/workflows/ci.yml must not use the deploy role"
    );
}

// --- KMS ----------------------------------------------------------------------------------------

/// DynamoDB decrypts the table key with the caller's credentials: the consumer needs
/// kms:Decrypt and kms:DescribeKey through DynamoDB, and the boundary and key policy must allow it.
#[test]
fn the_consumer_can_use_the_table_key_through_dynamodb() {
    let file = tf_file("tofu/modules/consumer/main.tf");
    let document = policy_document(&file, "this");
    for action in ["kms:Decrypt", "kms:DescribeKey"] {
        let via_dynamodb = policy_statements(document).into_iter().any(|statement| {
            literal_list(statement, "actions")
                .iter()
                .any(|a| a == action)
                && conditions(statement).iter().any(|(variable, values)| {
                    variable == "kms:ViaService"
                        && values.iter().all(|value| value.starts_with("dynamodb."))
                })
        });
        assert!(
            via_dynamodb,
            "{}: the consumer role needs {action} with kms:ViaService dynamodb.<region>.amazonaws.com",
            file.path
        );
    }

    let ci = tf_file("tofu/modules/ci_access/boundary.tf");
    let boundary = policy_document(&ci, "workload_boundary");
    let allowed: BTreeSet<String> = policy_statements(boundary)
        .into_iter()
        .filter(|statement| attr(statement, "sid").and_then(string_value).as_deref() == Some("Key"))
        .flat_map(|statement| literal_list(statement, "actions"))
        .collect();
    for action in ["kms:Decrypt", "kms:DescribeKey"] {
        assert!(
            allowed.contains(action),
            "the workload boundary must allow {action} on the key"
        );
    }

    // The key policy delegates both to IAM policies.
    let encryption = tf_file("tofu/modules/encryption/main.tf");
    let key = policy_document(&encryption, "key");
    let delegated: BTreeSet<String> = policy_statements(key)
        .into_iter()
        .filter(|statement| {
            attr(statement, "sid").and_then(string_value).as_deref() == Some("DelegateToIam")
        })
        .flat_map(|statement| literal_list(statement, "actions"))
        .collect();
    for action in ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"] {
        assert!(
            delegated.contains(action),
            "the key policy must delegate {action} to IAM"
        );
    }
}

// --- tagging ------------------------------------------------------------------------------------

/// lambda:FunctionArn is not a condition key of TagResource/UntagResource: under it they are denied.
#[test]
fn lambda_tagging_is_not_under_a_function_arn_condition() {
    let mut mapping_tagging = false;
    let files = tf_files();
    for file in &files {
        let locals = support::module_locals(&files, file);
        // Written-out statements, then those the families table of ci_access renders.
        let mut statements: Vec<(String, hcl::Body)> = Vec::new();
        for document in labelled(&file.body, "data", &["aws_iam_policy_document"]) {
            for statement in policy_statements(document) {
                statements.push((describe(document), statement.clone()));
            }
        }
        for statement in family_statements(&files, file) {
            statements.push(("local.families".to_owned(), statement));
        }
        for (place, statement) in &statements {
            let actions = literal_list(statement, "actions");
            if !actions
                .iter()
                .any(|a| a == "lambda:TagResource" || a == "lambda:UntagResource")
            {
                continue;
            }
            for (variable, _) in conditions(statement) {
                assert_ne!(
                    variable, "lambda:FunctionArn",
                    "{}: {place}: lambda:TagResource/UntagResource have no lambda:FunctionArn key",
                    file.path,
                );
            }
            if actions.iter().any(|a| a == "lambda:TagResource")
                && attr(statement, "resources").is_some_and(|resources| {
                    literals(resources, &locals)
                        .iter()
                        .any(|text| text.contains("event-source-mapping"))
                })
            {
                mapping_tagging = true;
            }
        }
    }
    assert!(
        mapping_tagging,
        "the deploy role must be allowed lambda:TagResource on event source mappings"
    );
}

// --- API Gateway logging and error bodies -------------------------------------------------------

/// The account's API Gateway logging role serves every API of the region, not only this one:
/// it needs the actions of AWS's AmazonAPIGatewayPushToCloudWatchLogs on every log group.
#[test]
fn the_account_logging_role_covers_every_api() {
    let file = tf_file("tofu/modules/ingestion_api/main.tf");
    let locals = file.locals();
    let document = policy_document(&file, "cloudwatch");
    let mut granted = BTreeSet::new();
    for statement in policy_statements(document) {
        let resources = attr(statement, "resources")
            .map(|r| literals(r, &locals))
            .unwrap_or_default();
        let any_group = resources
            .iter()
            .any(|text| text.ends_with(":log-group:*") || text == "*");
        assert!(
            any_group,
            "{}: the logging role's statements must cover every log group, got {resources:?}",
            file.path
        );
        granted.extend(literal_list(statement, "actions"));
    }
    for action in [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
        "logs:FilterLogEvents",
        "logs:GetLogEvents",
        "logs:PutLogEvents",
    ] {
        assert!(granted.contains(action), "the logging role needs {action}");
    }
    // Outside the workload boundary (which covers only this configuration's log groups).
    let role = labelled(&file.body, "resource", &["aws_iam_role", "cloudwatch"]);
    let role = role.first().expect("aws_iam_role.cloudwatch");
    assert!(
        attr(&role.body, "permissions_boundary").is_none(),
        "the workload boundary would narrow the logging role to this API's log groups"
    );
}

/// Gateway response templates are substituted without escaping: only the quoted
/// `$context.error.messageString` may stand for text, and it must not be quoted again.
#[test]
fn gateway_responses_and_access_logs_stay_valid_json() {
    let file = tf_file("tofu/modules/ingestion_api/main.tf");
    let responses = labelled(
        &file.body,
        "resource",
        &["aws_api_gateway_gateway_response"],
    );
    assert!(!responses.is_empty(), "no gateway responses found");
    // What API Gateway substitutes, at its worst: validator text quoting the client's values.
    let substitutions = [
        (
            "$context.error.messageString",
            r#""Invalid \"request\" body""#,
        ),
        (
            "$context.error.validationErrorString",
            r#"[instance value ("x\") not found]"#,
        ),
        ("$context.error.responseType", "BAD_REQUEST_BODY"),
        ("$context.error.message", r#"Invalid "request" body"#),
    ];
    for response in responses {
        let Some(Expression::Object(templates)) = attr(&response.body, "response_templates") else {
            panic!(
                "{}: response_templates must be an object",
                describe(response)
            );
        };
        for (_, template) in templates {
            let mut body = string_value(template)
                .unwrap_or_else(|| panic!("{}: template must be a literal", describe(response)));
            for (variable, value) in substitutions {
                body = body.replace(variable, value);
            }
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "{}: the body is not JSON once API Gateway substitutes its variables: {body}",
                describe(response)
            );
        }
    }
    walk_code(&file.body, &mut |expr| {
        for text in literals(expr, &BTreeMap::new()) {
            assert!(
                !text.contains("validationErrorString"),
                "{}: $context.error.validationErrorString is unescaped text; it breaks JSON",
                file.path
            );
        }
    });
}

// --- bucket names -------------------------------------------------------------------------------

fn arg_string(args: &FuncArgs, index: usize) -> String {
    args[index].as_str().expect("string argument").to_string()
}

fn arg_index(args: &FuncArgs, index: usize) -> usize {
    args[index]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .expect("non-negative integer argument")
}

/// OpenTofu's `length` for strings (characters) and collections.
fn tf_length(args: FuncArgs) -> Result<hcl::Value, String> {
    let length = match &args[0] {
        hcl::Value::String(text) => text.chars().count(),
        hcl::Value::Array(items) => items.len(),
        hcl::Value::Object(map) => map.len(),
        other => return Err(format!("length of {other:?}")),
    };
    Ok(hcl::Value::from(length as u64))
}

/// OpenTofu's `substr(string, offset, length)` for non-negative arguments.
fn tf_substr(args: FuncArgs) -> Result<hcl::Value, String> {
    let text = arg_string(&args, 0);
    let (offset, length) = (arg_index(&args, 1), arg_index(&args, 2));
    Ok(text
        .chars()
        .skip(offset)
        .take(length)
        .collect::<String>()
        .into())
}

fn tf_trimsuffix(args: FuncArgs) -> Result<hcl::Value, String> {
    let (text, suffix) = (arg_string(&args, 0), arg_string(&args, 1));
    Ok(text
        .strip_suffix(&suffix)
        .unwrap_or(&text)
        .to_string()
        .into())
}

/// Stands in for `sha256`: the same shape (64 lower-case hex digits), deterministic per input.
fn tf_sha256(args: FuncArgs) -> Result<hcl::Value, String> {
    let text = arg_string(&args, 0);
    let mut out = String::new();
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..4u64 {
        for byte in text.bytes().chain(round.to_le_bytes()) {
            state ^= u64::from(byte);
            state = state.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{state:016x}"));
    }
    Ok(out.into())
}

/// The storage module's bucket names for one name prefix, account and region, evaluated from the
/// module's own `locals` (with stand-ins for the functions they call).
fn bucket_names(name_prefix: &str, account_id: &str, region: &str) -> BTreeMap<String, String> {
    let file = tf_file("tofu/modules/storage/main.tf");
    let mut ctx = Context::new();
    ctx.declare_var(
        "var",
        hcl::to_value(serde_json::json!({ "name_prefix": name_prefix })).expect("value"),
    );
    ctx.declare_var(
        "data",
        hcl::to_value(serde_json::json!({
            "aws_caller_identity": { "current": { "account_id": account_id } },
            "aws_region": { "current": { "id": region, "name": region, "region": region } },
        }))
        .expect("value"),
    );
    let string = || FuncDef::builder().param(ParamType::String);
    ctx.declare_func(
        "length",
        FuncDef::builder().param(ParamType::Any).build(tf_length),
    );
    ctx.declare_func(
        "substr",
        string()
            .param(ParamType::Number)
            .param(ParamType::Number)
            .build(tf_substr),
    );
    ctx.declare_func(
        "trimsuffix",
        string().param(ParamType::String).build(tf_trimsuffix),
    );
    ctx.declare_func("sha256", string().build(tf_sha256));

    // Locals may refer to each other: evaluate until nothing new resolves.
    let pending: Vec<(String, &Expression)> = file.locals().into_iter().collect();
    let mut values = hcl::Map::new();
    let mut left = pending;
    loop {
        let before = left.len();
        let mut still = Vec::new();
        for (name, expr) in left {
            let mut scoped = ctx.clone();
            scoped.declare_var("local", hcl::Value::Object(values.clone()));
            match expr.evaluate(&scoped) {
                Ok(value) => {
                    values.insert(name, value);
                }
                Err(_) => still.push((name, expr)),
            }
        }
        left = still;
        if left.is_empty() || left.len() == before {
            break;
        }
    }
    let names = values
        .get("bucket_names")
        .unwrap_or_else(|| panic!("{}: local.bucket_names does not evaluate", file.path));
    let hcl::Value::Object(names) = names else {
        panic!("local.bucket_names must be a map");
    };
    names
        .iter()
        .map(|(purpose, name)| {
            (
                purpose.clone(),
                name.as_str().expect("bucket name string").to_string(),
            )
        })
        .collect()
}

/// S3 general purpose bucket naming rules that a generated name could break.
fn check_bucket_name(name: &str) {
    assert!(
        (3..=63).contains(&name.len()),
        "bucket name `{name}` has {} characters (S3 allows 3-63)",
        name.len()
    );
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
        "bucket name `{name}` has characters S3 does not allow"
    );
    let first_last = [name.chars().next(), name.chars().last()];
    assert!(
        first_last
            .iter()
            .all(|c| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())),
        "bucket name `{name}` must start and end with a letter or digit"
    );
    assert!(
        !name.starts_with("xn--") && !name.contains(".."),
        "bucket name `{name}`"
    );
}

#[test]
fn every_bucket_name_fits_s3_for_the_longest_environment_and_region() {
    // The root module's validation allows 2-12 characters for the environment; regions are up to
    // 14 characters today (ap-southeast-5, us-isob-east-1). Longer inputs are tried too: the
    // names must stay within 63 characters whatever the inputs.
    let variables = read("tofu/variables.tf");
    assert!(
        variables.contains(r#"^[a-z][a-z0-9]{1,11}$"#),
        "tofu/variables.tf: the environment validation changed; update this test's longest environment"
    );
    let account = "123456789012";
    let mut seen = BTreeSet::new();
    for environment in ["prod", "abcdefghijkl", "abcdefghijklmnopqrstuvwxyz01234"] {
        for region in [
            "eu-central-1",
            "ap-southeast-5",
            "us-isob-east-1",
            "ap-southeast-northwest-9",
        ] {
            let prefix = format!("orderflow-{environment}");
            let names = bucket_names(&prefix, account, region);
            assert_eq!(
                names.keys().map(String::as_str).collect::<Vec<_>>(),
                ["access-logs", "athena-results", "data"],
                "one name per bucket"
            );
            for name in names.values() {
                check_bucket_name(name);
                assert!(
                    name.starts_with(&format!("{prefix}-")),
                    "`{name}` must stay under {prefix}-* (the CI roles' bucket scope)"
                );
                assert!(seen.insert(name.clone()), "`{name}` is not unique");
            }
            if environment == "prod" && region == "eu-central-1" {
                // Names that fit are kept readable.
                assert_eq!(
                    names["athena-results"],
                    format!("{prefix}-athena-results-{account}-{region}")
                );
            }
        }
    }

    // Every bucket takes its name from that map.
    let file = tf_file("tofu/modules/storage/main.tf");
    let buckets = bucket_calls(&file);
    assert_eq!(buckets.len(), 3, "three buckets");
    for bucket in buckets {
        let expr = attr(&bucket.body, "name").expect("bucket name");
        assert_eq!(
            support::traversal_path(expr).as_deref(),
            Some(&["local".to_string(), "bucket_names".to_string()][..]),
            "{}: the bucket name must be local.bucket_names[...]",
            describe(bucket)
        );
    }
}

/// The storage module's calls of the bucket module.
fn bucket_calls(file: &support::TfFile) -> Vec<&hcl::Block> {
    blocks(&file.body, "module")
        .filter(|call| {
            attr(&call.body, "source").and_then(string_value).as_deref() == Some("../bucket")
        })
        .collect()
}

/// The bucket module's checkov skips for access logging (CKV_AWS_18) and KMS encryption
/// (CKV_AWS_145) hold for the access-log bucket only: every other bucket logs to it and is
/// encrypted with the stack's key.
#[test]
fn every_bucket_but_the_log_bucket_logs_and_uses_the_key() {
    let file = tf_file("tofu/modules/storage/main.tf");
    let mut names = BTreeSet::new();
    for call in bucket_calls(&file) {
        let name = call.labels[0].as_str().to_string();
        let key = attr(&call.body, "kms_key_arn").expect("kms_key_arn is always set");
        let log_target = attr(&call.body, "log_target").expect("log_target is always set");
        if name == "access_logs" {
            assert!(
                matches!(key, Expression::Null),
                "the access-log bucket uses SSE-S3 (S3 delivers access logs to SSE-S3 only)"
            );
            assert!(
                matches!(log_target, Expression::Null),
                "the access-log bucket does not log into itself"
            );
        } else {
            assert!(
                support::is_traversal(key, &["var", "kms_key_arn"]),
                "{name}: encrypted with the stack's key"
            );
            let Expression::Object(target) = log_target else {
                panic!("{name}: log_target must be an object literal");
            };
            let bucket = target
                .iter()
                .find(|(key, _)| support::object_key(key).as_deref() == Some("bucket"))
                .map(|(_, value)| value)
                .expect("log_target.bucket");
            assert!(
                support::is_traversal(bucket, &["module", "access_logs", "log_target_bucket"]),
                "{name}: logs to the access-log bucket once its policy exists"
            );
        }
        names.insert(name);
    }
    assert_eq!(
        names,
        BTreeSet::from(["access_logs".into(), "athena_results".into(), "data".into()])
    );
}

// --- the prod variables -------------------------------------------------------------------------

/// `NAME` of every `TF_VAR_NAME:` a workflow sets.
fn workflow_tf_vars(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("TF_VAR_"))
        .filter_map(|rest| rest.split(':').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn both_workflows_and_the_first_apply_use_the_committed_prod_variables() {
    let tfvars_path = "tofu/prod.tfvars";
    let tfvars: hcl::Body = hcl::parse(&read(tfvars_path))
        .unwrap_or_else(|error| panic!("{tfvars_path} is not valid HCL: {error}"));
    let set: BTreeSet<String> = tfvars.attributes().map(|a| a.key.to_string()).collect();

    let root = support::module_files("tofu");
    let mut declared = BTreeMap::new();
    for file in &root {
        for variable in blocks(&file.body, "variable") {
            let name = variable.labels[0].as_str().to_string();
            declared.insert(name, attr(&variable.body, "default").is_some());
        }
    }
    for name in &set {
        assert!(
            declared.contains_key(name),
            "{tfvars_path} sets `{name}`, which tofu/variables.tf does not declare"
        );
    }
    // The settings whose absence made the CI apply revert or fail what the administrator applied.
    for name in [
        "environment",
        "create_github_oidc_provider",
        "manage_api_gateway_account",
        "alarm_email_addresses",
    ] {
        assert!(set.contains(name), "{tfvars_path} must set `{name}`");
    }

    let mut workflow_vars = Vec::new();
    for workflow in ["deploy.yml", "ci.yml"] {
        let path = format!(".github/workflows/{workflow}");
        let text = read(&path);
        let plans: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("tofu plan ") && !line.trim_start().starts_with('#'))
            .filter(|line| line.contains("-input=false"))
            .collect();
        assert!(!plans.is_empty(), "{path}: no `tofu plan` command found");
        for plan in plans {
            assert!(
                plan.contains("-var-file=prod.tfvars"),
                "{path}: `{}` must read the committed prod variables",
                plan.trim()
            );
            assert!(
                !plan.contains(" -var "),
                "{path}: no -var copies: {}",
                plan.trim()
            );
        }
        let vars = workflow_tf_vars(&text);
        for name in &vars {
            assert!(
                !set.contains(name),
                "{path}: TF_VAR_{name} duplicates {tfvars_path}: one source per setting"
            );
            assert!(
                declared.contains_key(name),
                "{path}: TF_VAR_{name} is not a variable"
            );
        }
        workflow_vars.push(vars);
    }
    assert_eq!(
        workflow_vars[0], workflow_vars[1],
        "deploy.yml and ci.yml must pass the same TF_VAR_s (plan what is applied)"
    );
    // Every variable without a default comes from the file or the workflows.
    for (name, has_default) in &declared {
        if !has_default {
            assert!(
                set.contains(name) || workflow_vars[0].contains(name),
                "`{name}` has no default and neither {tfvars_path} nor the workflows set it"
            );
        }
    }
    // tofu_state_kms_key_arn is account-specific: a repository variable, passed by both.
    assert!(workflow_vars[0].contains("tofu_state_kms_key_arn"));

    // The administrator's first apply reads the same file.
    let readme = read("tofu/README.md");
    assert!(
        readme.contains("tofu apply -var-file=prod.tfvars"),
        "tofu/README.md: the first apply must use -var-file=prod.tfvars"
    );
    assert!(repo_root().join(tfvars_path).is_file());
}

// --- the consumer's DynamoDB calls ----------------------------------------------------------------

/// DynamoDB's data-plane operations as the Rust SDK's client names them, with their IAM action.
const DYNAMODB_OPERATIONS: &[(&str, &str)] = &[
    ("batch_get_item", "dynamodb:BatchGetItem"),
    ("batch_write_item", "dynamodb:BatchWriteItem"),
    ("delete_item", "dynamodb:DeleteItem"),
    ("execute_statement", "dynamodb:PartiQLSelect"),
    ("get_item", "dynamodb:GetItem"),
    ("put_item", "dynamodb:PutItem"),
    ("query", "dynamodb:Query"),
    ("scan", "dynamodb:Scan"),
    ("transact_get_items", "dynamodb:GetItem"),
    ("transact_write_items", "dynamodb:PutItem"),
    ("update_item", "dynamodb:UpdateItem"),
];

/// The IAM actions of the DynamoDB client calls (`.put_item()`, ...) in the consumer's sources.
fn consumer_dynamodb_actions() -> BTreeSet<String> {
    fn visit(dir: &std::path::Path, sources: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("crates/consumer/src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                visit(&path, sources);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                sources.push(std::fs::read_to_string(&path).expect("a source file"));
            }
        }
    }
    let mut sources = Vec::new();
    visit(&repo_root().join("crates/consumer/src"), &mut sources);
    DYNAMODB_OPERATIONS
        .iter()
        .filter(|(method, _)| {
            let call = format!(".{method}()");
            sources.iter().any(|source| source.contains(&call))
        })
        .map(|(_, action)| (*action).to_owned())
        .collect()
}

/// The consumer's role may make exactly the DynamoDB calls the consumer's code makes, and the
/// workload boundary allows them: a role left on an action the code no longer uses
/// (`BatchWriteItem` after the move to conditional `PutItem`) denies every write in AWS, which
/// nothing local shows (neither dynalite nor moto checks a role's permissions).
#[test]
fn the_consumer_role_allows_exactly_the_dynamodb_calls_the_consumer_makes() {
    let used = consumer_dynamodb_actions();
    assert!(
        used.contains("dynamodb:PutItem"),
        "crates/consumer/src: expected the conditional .put_item() call, found {used:?}"
    );

    let file = tf_file("tofu/modules/consumer/main.tf");
    let granted: BTreeSet<String> = policy_statements(policy_document(&file, "this"))
        .into_iter()
        .flat_map(|statement| literal_list(statement, "actions"))
        .filter(|action| action.starts_with("dynamodb:"))
        .collect();
    assert_eq!(
        granted, used,
        "{}: the consumer role's DynamoDB actions must be those of the calls in crates/consumer/src",
        file.path
    );

    let files = tf_files();
    let families = files
        .iter()
        .find(|file| file.path.ends_with("tofu/modules/ci_access/families.tf"))
        .expect("tofu/modules/ci_access/families.tf");
    let boundary: BTreeSet<String> = family_statements(&files, families)
        .iter()
        .filter(|statement| {
            attr(statement, "sid")
                .and_then(string_value)
                .is_some_and(|sid| sid.starts_with("Workload"))
        })
        .flat_map(|statement| literal_list(statement, "actions"))
        .filter(|action| action.starts_with("dynamodb:"))
        .collect();
    for action in &used {
        assert!(
            boundary.contains(action),
            "tofu/modules/ci_access/families.tf: the workload boundary (the Tables family's \
             `workload` actions) must allow {action}, which the consumer calls"
        );
    }
}

// --- Lambda environments ------------------------------------------------------------------------

/// A function whose environment is encrypted with the stack's key (`kms_key_arn`) needs
/// `kms:Decrypt` on that key in its own role: Lambda decrypts the variables with the function's
/// role when it starts an execution environment, and without the grant every invocation fails
/// with KMSAccessDeniedException. Neither the twin nor moto decrypts anything, so only this shows it.
#[test]
fn a_function_with_an_encrypted_environment_can_decrypt_it() {
    /// Whether `expr` mentions the traversal `path` anywhere inside it.
    fn mentions(expr: &hcl::Expression, path: &[&str]) -> bool {
        let mut found = false;
        support::walk(expr, &mut |inner| {
            found |= support::is_traversal(inner, path)
        });
        found
    }
    const KEY: &[&str] = &["var", "workload", "kms_key_arn"];
    const HAS_ENVIRONMENT: &[&str] = &["local", "has_environment"];

    let file = tf_file("tofu/modules/lambda_function/main.tf");
    let function = labelled(&file.body, "resource", &["aws_lambda_function", "this"])
        .into_iter()
        .next()
        .expect("tofu/modules/lambda_function: resource \"aws_lambda_function\" \"this\"");
    assert!(
        attr(&function.body, "kms_key_arn").is_some_and(|key| mentions(key, KEY)),
        "{}: the function's environment is expected to be encrypted with the stack's key ({})",
        file.path,
        KEY.join(".")
    );
    // The grant: a statement made for each function with an environment, allowing kms:Decrypt on
    // the same key.
    let own = policy_document(&file, "own");
    let decrypts = blocks(&own.body, "dynamic").any(|dynamic| {
        attr(&dynamic.body, "for_each")
            .is_some_and(|for_each| mentions(for_each, HAS_ENVIRONMENT) && mentions(for_each, KEY))
            && blocks(&dynamic.body, "content").any(|content| {
                literal_list(&content.body, "actions") == ["kms:Decrypt"]
                    && attr(&content.body, "sid").and_then(string_value).as_deref()
                        == Some("DecryptEnvironment")
            })
    });
    assert!(
        decrypts,
        "{}: the role of a function with an environment must allow kms:Decrypt on the key that encrypts it (statement DecryptEnvironment)",
        file.path
    );
}
