//! Offline checks of the OpenTofu configuration (`tofu/`): it must agree with the files and code
//! it deploys, and follow the project's IAM and layout rules. Every `.tf` file is parsed with
//! `hcl-rs`; nothing here needs OpenTofu, a provider or AWS.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hcl::expr::{Expression, TraversalOperator};
use hcl::template::Element;
use orderflow_domain::{Partition, Table, table_file};
use support::{
    TfFile, attr, blocks, describe, func_call, has_comment, is_traversal, labelled, literals,
    module_files, object_key, policy_statements, read, read_json, repo_root, string_value,
    template, tf_file, tf_files, traversal_path, traversal_paths, used_traversal_paths, walk,
    walk_body, walk_code,
};

// --- partition keys and Firehose prefixes -------------------------------------------------------

fn table_file_partition_keys() -> Vec<String> {
    table_file()
        .partition_keys
        .iter()
        .map(|column| column.name.clone())
        .collect()
}

/// The keys the transformers put into Firehose's `metadata.partitionKeys`.
fn transformer_partition_keys() -> Vec<String> {
    let order_date = chrono::DateTime::from_timestamp(1_717_869_903, 0).expect("valid time");
    Partition::of(&order_date)
        .keys()
        .iter()
        .map(|(key, _)| key.to_string())
        .collect()
}

/// The `name=value` segments of an S3 key prefix, in order.
fn hive_segments(prefix: &str) -> Vec<(String, String)> {
    prefix
        .split('/')
        .filter_map(|segment| segment.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn delivery_setting(key: &str) -> String {
    read_json("tofu/pipeline.json")["delivery"][key]
        .as_str()
        .unwrap_or_else(|| panic!("tofu/pipeline.json: delivery.{key} must be a string"))
        .to_string()
}

#[test]
fn the_transformers_emit_the_partition_keys_of_the_table_file() {
    assert_eq!(
        transformer_partition_keys(),
        table_file_partition_keys(),
        "Partition::keys() (what the transformers emit) differs from partition_keys in sql/tables.json"
    );
}

#[test]
fn the_firehose_prefix_partitions_by_exactly_the_table_file_keys() {
    let prefix = delivery_setting("prefix");
    assert!(
        prefix.starts_with("{table}/") && prefix.ends_with('/'),
        "tofu/pipeline.json delivery.prefix must be {{table}}/.../ (Hive layout TABLE/year=.../), got {prefix}"
    );
    let segments = hive_segments(&prefix);
    let names: Vec<&str> = segments.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        table_file_partition_keys(),
        "tofu/pipeline.json delivery.prefix: partition directories differ from sql/tables.json"
    );
    for (name, value) in &segments {
        assert_eq!(
            value,
            &format!("!{{partitionKeyFromLambda:{name}}}"),
            "tofu/pipeline.json delivery.prefix: {name}= must take the transformer's {name} key"
        );
    }
}

#[test]
fn the_firehose_error_prefix_partitions_by_exactly_the_table_file_keys() {
    let prefix = delivery_setting("error_output_prefix");
    for part in ["{table}", "!{firehose:error-output-type}"] {
        assert!(
            prefix.contains(part),
            "tofu/pipeline.json delivery.error_output_prefix must contain {part}: {prefix}"
        );
    }
    assert!(
        prefix.ends_with('/'),
        "error_output_prefix must end with /: {prefix}"
    );
    let segments = hive_segments(&prefix);
    let names: Vec<&str> = segments.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        table_file_partition_keys(),
        "tofu/pipeline.json delivery.error_output_prefix: date directories differ from sql/tables.json"
    );
    for (name, value) in &segments {
        assert!(
            value.starts_with("!{timestamp:"),
            "tofu/pipeline.json delivery.error_output_prefix: {name}= must be a !{{timestamp:...}} (errors have no partition keys), got {value}"
        );
    }
}

#[test]
fn the_firehose_prefixes_are_read_from_the_settings_file() {
    for file in tf_files() {
        walk_body(&file.body, &mut |expr| {
            for text in literals(expr, &BTreeMap::new()) {
                assert!(
                    !text.contains("partitionKeyFromLambda") && !text.contains("!{timestamp:"),
                    "{}: Firehose prefixes belong in tofu/pipeline.json, found `{text}`",
                    file.path
                );
            }
        });
    }
    let delivery = module_files("tofu/modules/delivery");
    let paths = traversal_paths(&delivery);
    for key in ["prefix", "error_output_prefix"] {
        assert!(
            paths.iter().any(|path| path == &["var", "settings", key]),
            "tofu/modules/delivery never reads var.settings.{key}"
        );
    }
    let streams: Vec<_> = delivery
        .iter()
        .flat_map(|file| {
            labelled(
                &file.body,
                "resource",
                &["aws_kinesis_firehose_delivery_stream"],
            )
        })
        .collect();
    assert_eq!(
        streams.len(),
        1,
        "tofu/modules/delivery: expected one Firehose stream"
    );
    let s3 = blocks(&streams[0].body, "extended_s3_configuration")
        .next()
        .expect("the Firehose stream has extended_s3_configuration");
    for key in ["prefix", "error_output_prefix"] {
        let expr = attr(&s3.body, key).unwrap_or_else(|| panic!("Firehose stream: no {key}"));
        assert!(
            string_value(expr).is_none(),
            "tofu/modules/delivery: Firehose {key} is a literal; it must come from the settings"
        );
    }
}

/// Issue 11, item 6: a Firehose delivery stream "starts reading data from the `LATEST` position"
/// of its Kinesis source (Firehose developer guide, "Writing to Amazon Kinesis Firehose Using
/// Kinesis Streams"), so orders the API accepted before it existed would reach DynamoDB but never
/// S3. The API stage, the only way in, is created after every delivery stream.
#[test]
fn the_api_stage_is_created_after_every_delivery_stream() {
    let root = tf_file("tofu/main.tf");
    let api = labelled(&root.body, "module", &["ingestion_api"]);
    let passed = api
        .first()
        .and_then(|module| attr(&module.body, "delivery_stream_arns"))
        .expect("tofu/main.tf: module \"ingestion_api\" needs delivery_stream_arns");
    let Expression::ForExpr(for_expr) = passed else {
        panic!("tofu/main.tf: delivery_stream_arns must be a for expression over module.delivery");
    };
    assert!(
        is_traversal(&for_expr.collection_expr, &["module", "delivery"]),
        "tofu/main.tf: delivery_stream_arns must cover every module.delivery"
    );
    let value = traversal_path(&for_expr.value_expr);
    assert_eq!(
        value,
        Some(vec![
            for_expr.value_var.to_string(),
            "delivery_stream_arn".to_owned()
        ]),
        "tofu/main.tf: delivery_stream_arns must be the delivery streams' ARNs"
    );

    let module = tf_file("tofu/modules/ingestion_api/main.tf");
    let stage = labelled(&module.body, "resource", &["aws_api_gateway_stage", "this"]);
    let depends_on = stage
        .first()
        .and_then(|stage| attr(&stage.body, "depends_on"))
        .expect("ingestion_api: aws_api_gateway_stage.this needs depends_on");
    let Expression::Array(items) = depends_on else {
        panic!("ingestion_api: depends_on must be a list");
    };
    assert!(
        items
            .iter()
            .any(|item| is_traversal(item, &["var", "delivery_stream_arns"])),
        "ingestion_api: aws_api_gateway_stage.this must depend on var.delivery_stream_arns"
    );
}

// --- Glue catalog -------------------------------------------------------------------------------

#[test]
fn the_root_module_reads_the_table_file() {
    let root = tf_file("tofu/main.tf");
    let locals = root.locals();
    let path_template = locals
        .get("table_file_path")
        .and_then(|expr| template(expr))
        .expect("tofu/main.tf: locals.table_file_path must be a path template");
    let mut path = String::new();
    for element in path_template.elements() {
        match element {
            Element::Literal(text) => path.push_str(text),
            Element::Interpolation(interpolation)
                if is_traversal(&interpolation.expr, &["path", "module"]) => {}
            other => panic!("tofu/main.tf: unexpected part of table_file_path: {other:?}"),
        }
    }
    let resolved = repo_root()
        .join("tofu")
        .join(path.trim_start_matches('/'))
        .canonicalize()
        .unwrap_or_else(|error| {
            panic!("tofu/main.tf: table_file_path {path} does not exist: {error}")
        });
    assert_eq!(
        resolved,
        repo_root().join("sql/tables.json"),
        "tofu/main.tf: table_file_path"
    );
    let catalog = labelled(&root.body, "module", &["catalog"]);
    let passed = catalog
        .first()
        .and_then(|module| attr(&module.body, "table_file_path"))
        .expect("tofu/main.tf: module \"catalog\" needs table_file_path");
    assert!(
        is_traversal(passed, &["local", "table_file_path"]),
        "tofu/main.tf: module \"catalog\" must get local.table_file_path"
    );
}

#[test]
fn the_glue_tables_are_generated_from_the_table_file() {
    let catalog = module_files("tofu/modules/catalog");
    let main = catalog
        .iter()
        .find(|file| file.path.ends_with("main.tf"))
        .expect("tofu/modules/catalog/main.tf");
    let locals = main.locals();

    let decoded = locals
        .get("table_file")
        .and_then(|expr| func_call(expr, "jsondecode"))
        .and_then(|args| func_call(&args[0], "file"))
        .expect("tofu/modules/catalog: locals.table_file must be jsondecode(file(...))");
    assert!(
        is_traversal(&decoded[0], &["var", "table_file_path"]),
        "tofu/modules/catalog: the table file must be read from var.table_file_path"
    );
    match locals.get("tables") {
        Some(Expression::ForExpr(for_expr)) => assert!(
            is_traversal(
                &for_expr.collection_expr,
                &["local", "table_file", "tables"]
            ),
            "tofu/modules/catalog: locals.tables must iterate local.table_file.tables"
        ),
        other => {
            panic!("tofu/modules/catalog: locals.tables must be a for expression, got {other:?}")
        }
    }
    assert!(
        locals
            .get("partition_keys")
            .is_some_and(|expr| is_traversal(expr, &["local", "table_file", "partition_keys"])),
        "tofu/modules/catalog: locals.partition_keys must be local.table_file.partition_keys"
    );

    let tables = labelled(&main.body, "resource", &["aws_glue_catalog_table"]);
    assert_eq!(
        tables.len(),
        1,
        "tofu/modules/catalog: expected one aws_glue_catalog_table"
    );
    let table = tables[0];
    let name = describe(table);
    assert!(
        attr(&table.body, "for_each").is_some_and(|expr| is_traversal(expr, &["local", "tables"])),
        "{name}: for_each must be local.tables"
    );
    let storage = blocks(&table.body, "storage_descriptor")
        .next()
        .unwrap_or_else(|| panic!("{name}: no storage_descriptor"));
    assert_eq!(
        blocks(&storage.body, "columns").count(),
        0,
        "{name}: static columns blocks copy the table file; use dynamic \"columns\""
    );
    expect_dynamic_from(
        &storage.body,
        "columns",
        &["each", "value", "columns"],
        &name,
    );
    expect_dynamic_from(
        &table.body,
        "partition_keys",
        &["local", "partition_keys"],
        &name,
    );
}

/// `dynamic "LABEL" { for_each = FROM; content { name = LABEL.value.name, type = LABEL.value.type } }`
fn expect_dynamic_from(body: &hcl::Body, label: &str, from: &[&str], owner: &str) {
    let dynamic = labelled(body, "dynamic", &[label]);
    let dynamic = dynamic
        .first()
        .unwrap_or_else(|| panic!("{owner}: no dynamic \"{label}\" block"));
    assert!(
        attr(&dynamic.body, "for_each").is_some_and(|expr| is_traversal(expr, from)),
        "{owner}: dynamic \"{label}\" must iterate {}",
        from.join(".")
    );
    let content = blocks(&dynamic.body, "content")
        .next()
        .unwrap_or_else(|| panic!("{owner}: dynamic \"{label}\" has no content"));
    for field in ["name", "type"] {
        assert!(
            attr(&content.body, field)
                .is_some_and(|expr| is_traversal(expr, &[label, "value", field])),
            "{owner}: dynamic \"{label}\" must set {field} = {label}.value.{field}"
        );
    }
}

#[test]
fn no_column_is_named_in_the_configuration() {
    let file = table_file();
    let names: BTreeSet<&str> = file
        .tables
        .iter()
        .flat_map(|table| &table.columns)
        .chain(&file.partition_keys)
        .map(|column| column.name.as_str())
        .collect();
    for tf in tf_files() {
        for block in tf.body.blocks() {
            // The DynamoDB key attributes are the item contract (`docs/design.md` section 3), checked
            // against the domain crate below; they are not analytics columns.
            if block
                .labels
                .first()
                .is_some_and(|label| label.as_str() == "aws_dynamodb_table")
            {
                continue;
            }
            walk_body(&block.body, &mut |expr| {
                if let Some(text) = string_value(expr) {
                    assert!(
                        !names.contains(text.as_str()),
                        "{}: {} names the column \"{text}\"; columns come from sql/tables.json",
                        tf.path,
                        describe(block)
                    );
                }
            });
        }
    }
}

#[test]
fn the_dynamodb_keys_are_the_item_contract() {
    let files = module_files("tofu/modules/consumer");
    let tables: Vec<_> = files
        .iter()
        .flat_map(|file| labelled(&file.body, "resource", &["aws_dynamodb_table"]))
        .collect();
    assert_eq!(
        tables.len(),
        1,
        "tofu/modules/consumer: expected one aws_dynamodb_table"
    );
    let body = &tables[0].body;
    let string = |key: &str| attr(body, key).and_then(string_value);
    assert_eq!(
        string("hash_key").as_deref(),
        Some(orderflow_domain::PARTITION_KEY)
    );
    assert_eq!(
        string("range_key").as_deref(),
        Some(orderflow_domain::SORT_KEY)
    );
    assert_eq!(string("billing_mode").as_deref(), Some("PAY_PER_REQUEST"));
    for key in [orderflow_domain::PARTITION_KEY, orderflow_domain::SORT_KEY] {
        let declared = blocks(body, "attribute").any(|attribute| {
            attr(&attribute.body, "name")
                .and_then(string_value)
                .as_deref()
                == Some(key)
                && attr(&attribute.body, "type")
                    .and_then(string_value)
                    .as_deref()
                    == Some("S")
        });
        assert!(
            declared,
            "aws_dynamodb_table: attribute {key} of type S is missing"
        );
    }
}

// --- Lambdas ------------------------------------------------------------------------------------

fn lambda_functions() -> Vec<(String, hcl::Block)> {
    tf_files()
        .into_iter()
        .flat_map(|file| {
            labelled(&file.body, "resource", &["aws_lambda_function"])
                .into_iter()
                .map(|block| (file.path.clone(), block.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every call of the `lambda_function` module, with the file it is in.
fn lambda_function_calls() -> Vec<(String, hcl::Block)> {
    tf_files()
        .into_iter()
        .flat_map(|file| {
            blocks(&file.body, "module")
                .filter(|call| {
                    attr(&call.body, "source").and_then(string_value).as_deref()
                        == Some("../lambda_function")
                })
                .map(|call| (file.path.clone(), call.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The names of the environment variables a `lambda_function` call passes (none without an
/// `environment` argument).
fn environment_keys(call: &hcl::Block) -> BTreeSet<String> {
    let Some(environment) = attr(&call.body, "environment") else {
        return BTreeSet::new();
    };
    let Expression::Object(variables) = environment else {
        panic!("{}: environment must be an object literal", describe(call));
    };
    variables
        .keys()
        .map(|key| object_key(key).expect("environment variable names are literals"))
        .collect()
}

#[test]
fn each_lambda_gets_exactly_the_environment_its_binary_reads() {
    // One function resource, in the module every Lambda is made with, and its environment is
    // exactly what the caller passes.
    let functions = lambda_functions();
    let paths: Vec<&str> = functions.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        ["tofu/modules/lambda_function/main.tf"],
        "aws_lambda_function resources moved or were added: extend this test"
    );
    let (path, function) = &functions[0];
    let environment = blocks(&function.body, "dynamic")
        .find(|block| block.labels.first().map(|l| l.as_str()) == Some("environment"))
        .unwrap_or_else(|| panic!("{path}: the environment must be a dynamic block"));
    let for_each = attr(&environment.body, "for_each").expect("for_each");
    let mut reads_variable = false;
    walk(for_each, &mut |expr| {
        reads_variable |= is_traversal(expr, &["var", "environment"]);
    });
    assert!(
        reads_variable,
        "{path}: the environment block must come from var.environment"
    );

    let calls = lambda_function_calls();
    let callers: BTreeSet<&str> = calls.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        callers,
        BTreeSet::from([
            "tofu/modules/consumer/main.tf",
            "tofu/modules/delivery/main.tf"
        ]),
        "lambda_function calls moved or were added: extend this test"
    );
    for (path, call) in &calls {
        let keys = environment_keys(call);
        if path.contains("/consumer/") {
            assert_eq!(
                keys,
                BTreeSet::from([orderflow_consumer::ORDERS_TABLE_ENV.to_string()]),
                "{path}: the consumer reads exactly {} (crates/consumer/src/lib.rs)",
                orderflow_consumer::ORDERS_TABLE_ENV
            );
        } else {
            assert!(
                keys.is_empty(),
                "{path}: the transformers read no environment variables"
            );
        }
    }
}

#[test]
fn each_lambda_runs_its_bootstrap_on_arm64_with_json_logs() {
    for (path, function) in lambda_functions() {
        let name = format!("{path}: {}", describe(&function));
        let string = |key: &str| attr(&function.body, key).and_then(string_value);
        assert_eq!(
            string("handler").as_deref(),
            Some("bootstrap"),
            "{name}: handler"
        );
        assert_eq!(
            string("runtime").as_deref(),
            Some("provided.al2023"),
            "{name}: runtime"
        );
        let architectures = match attr(&function.body, "architectures") {
            Some(Expression::Array(items)) => items.iter().filter_map(string_value).collect(),
            _ => Vec::new(),
        };
        assert_eq!(architectures, ["arm64"], "{name}: architectures");
        let log_format = blocks(&function.body, "logging_config")
            .next()
            .and_then(|config| attr(&config.body, "log_format"))
            .and_then(string_value);
        assert_eq!(
            log_format.as_deref(),
            Some("JSON"),
            "{name}: logging_config.log_format"
        );
        assert!(
            attr(&function.body, "filename")
                .is_some_and(|expr| is_traversal(expr, &["var", "lambda_zip"])),
            "{name}: filename must be var.lambda_zip"
        );
        let hash_of = attr(&function.body, "source_code_hash")
            .and_then(|expr| func_call(expr, "filebase64sha256"))
            .unwrap_or_else(|| panic!("{name}: source_code_hash must be filebase64sha256(...)"));
        assert!(
            is_traversal(&hash_of[0], &["var", "lambda_zip"]),
            "{name}: source_code_hash must hash var.lambda_zip"
        );
    }
}

fn cargo_binaries(manifest: &str) -> BTreeSet<String> {
    let manifest: toml::Table = read(manifest)
        .parse()
        .unwrap_or_else(|error| panic!("{manifest} is not valid TOML: {error}"));
    manifest
        .get("bin")
        .and_then(|bins| bins.as_array())
        .into_iter()
        .flatten()
        .filter_map(|bin| bin.get("name")?.as_str().map(str::to_string))
        .collect()
}

/// Renders a root-module `lambda_zip` template to a file name, for one `each.key`.
fn render_zip_name(expr: &Expression, each_key: Option<&str>) -> String {
    let template = template(expr).expect("lambda_zip is a string template");
    let mut name = String::new();
    for element in template.elements() {
        match element {
            Element::Literal(text) => name.push_str(text),
            Element::Interpolation(interpolation) => {
                let expr = &interpolation.expr;
                if is_traversal(expr, &["local", "dist_dir"]) {
                    continue;
                }
                // The names file (tofu/lambdas.json): `local.lambdas.consumer` and
                // `local.lambdas.transformers[each.key]`.
                let lambdas = read_json("tofu/lambdas.json");
                if is_traversal(expr, &["local", "lambdas", "consumer"]) {
                    name.push_str(lambdas["consumer"].as_str().expect("a name"));
                    continue;
                }
                let key = each_key.expect("each.key is used only in for_each modules");
                if let Expression::Traversal(traversal) = expr
                    && traversal_path(expr)
                        .is_some_and(|p| p == ["local", "lambdas", "transformers"])
                    && let [.., TraversalOperator::Index(index)] = traversal.operators.as_slice()
                    && is_traversal(index, &["each", "key"])
                {
                    name.push_str(lambdas["transformers"][key].as_str().expect("a name"));
                } else if is_traversal(expr, &["each", "key"]) {
                    name.push_str(key);
                } else if let Some(args) = func_call(expr, "replace")
                    && is_traversal(&args[0], &["each", "key"])
                    && let (Some(from), Some(to)) = (string_value(&args[1]), string_value(&args[2]))
                {
                    name.push_str(&key.replace(&from, &to));
                } else {
                    panic!(
                        "tofu/main.tf: lambda_zip uses an interpolation this test cannot evaluate: {expr:?}"
                    );
                }
            }
            Element::Directive(_) => panic!("tofu/main.tf: lambda_zip must not use directives"),
        }
    }
    name.trim_start_matches('/').to_string()
}

#[test]
fn the_lambda_zips_are_named_after_the_cargo_binaries() {
    let binaries: BTreeSet<String> = cargo_binaries("crates/consumer/Cargo.toml")
        .into_iter()
        .chain(cargo_binaries("crates/transformer/Cargo.toml"))
        .collect();
    let tables: Vec<&str> = table_file()
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let root = tf_file("tofu/main.tf");
    let mut zips = BTreeSet::new();
    for module in blocks(&root.body, "module") {
        let Some(zip) = attr(&module.body, "lambda_zip") else {
            continue;
        };
        let keys: Vec<Option<&str>> = match attr(&module.body, "for_each") {
            Some(expr) if is_traversal(expr, &["local", "tables"]) => {
                tables.iter().copied().map(Some).collect()
            }
            Some(other) => panic!(
                "tofu/main.tf: {}: unexpected for_each {other:?}",
                describe(module)
            ),
            None => vec![None],
        };
        for key in keys {
            let file = render_zip_name(zip, key);
            assert!(
                file.ends_with(".zip") && !file.contains('/'),
                "tofu/main.tf: {}: lambda_zip must be <dist dir>/<binary>.zip, got {file}",
                describe(module)
            );
            zips.insert(file.trim_end_matches(".zip").to_string());
        }
    }
    assert_eq!(
        zips, binaries,
        "the zips the configuration deploys differ from the [[bin]] targets of crates/consumer and crates/transformer"
    );
    assert_eq!(
        tables.len() + 1,
        binaries.len(),
        "one transformer per table of sql/tables.json plus the consumer"
    );
    for table in Table::ALL {
        assert!(
            tables.contains(&table.name()),
            "sql/tables.json lacks {}",
            table.name()
        );
    }
}

// --- pipeline settings --------------------------------------------------------------------------

#[test]
fn every_pipeline_setting_is_used_by_the_configuration() {
    let settings = read_json("tofu/pipeline.json");
    let settings = settings
        .as_object()
        .expect("tofu/pipeline.json is an object");
    let root = tf_file("tofu/main.tf");

    // Which module variable receives which settings section: `x = local.pipeline.<section>`.
    let mut receivers: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for module in blocks(&root.body, "module") {
        let source = attr(&module.body, "source")
            .and_then(string_value)
            .unwrap_or_else(|| panic!("tofu/main.tf: {} has no literal source", describe(module)));
        let dir = format!("tofu/{}", source.trim_start_matches("./"));
        for attribute in module.body.attributes() {
            if let Some(path) = traversal_path(&attribute.expr)
                && path.len() == 3
                && path[..2] == ["local", "pipeline"]
            {
                receivers
                    .entry(path[2].clone())
                    .or_default()
                    .push((dir.clone(), attribute.key.to_string()));
            }
        }
    }
    let root_paths = used_traversal_paths(std::slice::from_ref(&root));
    let mut module_paths: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();

    let mut unused = Vec::new();
    for (section, keys) in settings {
        let keys = keys
            .as_object()
            .unwrap_or_else(|| panic!("tofu/pipeline.json: {section} must be an object"));
        for key in keys.keys() {
            let direct = root_paths
                .iter()
                .any(|path| path.len() >= 4 && path[..4] == ["local", "pipeline", section, key]);
            let via_module = receivers
                .get(section)
                .into_iter()
                .flatten()
                .any(|(dir, variable)| {
                    module_paths
                        .entry(dir.clone())
                        .or_insert_with(|| used_traversal_paths(&module_files(dir)))
                        .iter()
                        .any(|path| path.len() >= 3 && path[..3] == ["var", variable.as_str(), key])
                });
            if !direct && !via_module {
                unused.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "tofu/pipeline.json settings no .tf file reads: {}",
        unused.join(", ")
    );
}

// --- IAM ----------------------------------------------------------------------------------------

fn policy_documents(file: &TfFile) -> Vec<&hcl::Block> {
    labelled(&file.body, "data", &["aws_iam_policy_document"])
}

/// A Deny only takes access away; the TLS-only bucket policies deny `s3:*` as AWS recommends.
fn check_actions(where_: &str, effect: &str, actions: &[String]) {
    if effect == "Deny" {
        return;
    }
    for action in actions {
        assert!(
            !action.contains('*'),
            "{where_}: wildcard action `{action}` in an Allow statement; list the actions"
        );
    }
}

#[test]
fn no_policy_statement_allows_a_wildcard_action() {
    let mut checked = 0;
    let files = tf_files();
    for file in &files {
        // A table's statements (ci_access's families) are checked as the document renders them;
        // the `dynamic "statement"` that renders them takes its actions from the table.
        let table = support::family_statements(&files, file);
        let explicit = policy_documents(file).into_iter().flat_map(|document| {
            policy_statements(document)
                .into_iter()
                .filter(|statement| {
                    !attr(statement, "actions").is_some_and(|actions| {
                        support::traversal_path(actions).is_some_and(|path| {
                            path.starts_with(&["statement".into(), "value".into()])
                        })
                    })
                })
                .map(move |statement| (describe(document), statement))
        });
        let all: Vec<(String, &hcl::Body)> = explicit
            .chain(
                table
                    .iter()
                    .map(|statement| ("local.families".to_string(), statement)),
            )
            .collect();
        for (document, statement) in all {
            let where_ = format!("{}: {document}", file.path);
            assert!(
                attr(statement, "not_actions").is_none(),
                "{where_}: not_actions allows everything else"
            );
            let effect = attr(statement, "effect")
                .and_then(string_value)
                .unwrap_or_else(|| "Allow".to_string());
            let actions: Vec<String> = match attr(statement, "actions") {
                Some(Expression::Array(items)) => items
                    .iter()
                    .map(|item| {
                        string_value(item).unwrap_or_else(|| {
                            panic!("{where_}: actions must be literal strings, got {item:?}")
                        })
                    })
                    .collect(),
                other => panic!("{where_}: actions must be a list of literals, got {other:?}"),
            };
            check_actions(&where_, &effect, &actions);
            checked += 1;
        }
        // Policies written as jsonencode({Statement = [...]}).
        walk_body(&file.body, &mut |expr| {
            let Some(args) = func_call(expr, "jsonencode") else {
                return;
            };
            let Some(Expression::Object(policy)) = args.first() else {
                return;
            };
            let statements = policy
                .iter()
                .find(|(key, _)| object_key(key).as_deref() == Some("Statement"))
                .map(|(_, value)| value);
            let Some(Expression::Array(statements)) = statements else {
                return;
            };
            for statement in statements {
                let Expression::Object(statement) = statement else {
                    continue;
                };
                let field = |name: &str| {
                    statement
                        .iter()
                        .find(|(key, _)| object_key(key).as_deref() == Some(name))
                        .map(|(_, value)| value)
                };
                let effect = field("Effect").and_then(string_value).unwrap_or_default();
                let mut actions = Vec::new();
                if let Some(action) = field("Action") {
                    walk(action, &mut |inner| actions.extend(string_value(inner)));
                }
                assert!(
                    field("NotAction").is_none(),
                    "{}: NotAction in a jsonencode'd policy",
                    file.path
                );
                check_actions(
                    &format!("{}: jsonencode'd policy", file.path),
                    &effect,
                    &actions,
                );
                checked += 1;
            }
        });
        // Heredoc JSON policies would escape both checks.
        for block in file.body.blocks() {
            for key in ["policy", "assume_role_policy"] {
                if let Some(expr) = attr(&block.body, key) {
                    assert!(
                        !matches!(expr, Expression::TemplateExpr(_) | Expression::String(_)),
                        "{}: {}: write {key} as an aws_iam_policy_document, not a string",
                        file.path,
                        describe(block)
                    );
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} policy statements found: is the walk broken?"
    );
}

/// A policy document overrides a statement of its `source_policy_documents` that has the same
/// sid, silently: no written-out statement of ci_access may reuse a sid the families table
/// renders, or that family's permissions would vanish from the policy.
#[test]
fn family_sids_are_not_reused_by_written_out_statements() {
    let files = tf_files();
    let mut families = 0;
    for file in &files {
        let table = support::family_statements(&files, file);
        if table.is_empty() {
            continue;
        }
        let rendered: BTreeSet<String> = table
            .iter()
            .filter_map(|statement| attr(statement, "sid").and_then(string_value))
            .collect();
        assert_eq!(
            rendered.len(),
            table.len(),
            "{}: family sids repeat",
            file.path
        );
        families += rendered.len();
        let module = Path::new(&file.path).parent().expect("a module folder");
        for other in files
            .iter()
            .filter(|other| Path::new(&other.path).parent() == Some(module))
        {
            for document in policy_documents(other) {
                for statement in policy_statements(document) {
                    if let Some(sid) = attr(statement, "sid").and_then(string_value) {
                        assert!(
                            !rendered.contains(&sid),
                            "{}: {}: sid {sid} is also a family statement's, and would replace it",
                            other.path,
                            describe(document)
                        );
                    }
                }
            }
        }
    }
    assert!(
        families > 10,
        "the families table renders {families} statements: is the walk broken?"
    );
}

#[test]
fn every_wildcard_resource_is_explained_by_a_comment() {
    let mut wildcards = 0;
    let files = tf_files();
    for file in &files {
        let locals = support::module_locals(&files, file);
        // `resources` attributes in document order, paired with their lines in the text: first
        // those of ci_access's `local.families` table (written above its document), then the
        // statements'.
        let mut parsed = Vec::new();
        if let Some(Expression::Object(families)) = file.locals().get("families").copied() {
            for family in families.values() {
                if let Expression::Object(family) = family {
                    parsed.extend(family.iter().filter_map(|(key, value)| {
                        (support::object_key(key).as_deref() == Some("resources")).then_some(value)
                    }));
                }
            }
        }
        for document in policy_documents(file) {
            for statement in policy_statements(document) {
                if let Some(expr) = attr(statement, "resources") {
                    parsed.push(expr);
                }
            }
        }
        let lines: Vec<&str> = file.text.lines().collect();
        let resource_lines: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| {
                line.trim_start()
                    .strip_prefix("resources")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|(index, _)| index)
            .collect();
        assert_eq!(
            parsed.len(),
            resource_lines.len(),
            "{}: cannot pair `resources` attributes with their lines (one per line, inside statements)",
            file.path
        );
        for (expr, line) in parsed.into_iter().zip(resource_lines) {
            if !literals(expr, &locals)
                .iter()
                .any(|text| text.contains('*'))
            {
                continue;
            }
            wildcards += 1;
            let above = line.checked_sub(1).map(|index| lines[index].trim_start());
            assert!(
                has_comment(lines[line]) || above.is_some_and(|above| above.starts_with('#')),
                "{}:{}: wildcard resource without a comment saying why: {}",
                file.path,
                line + 1,
                lines[line].trim()
            );
        }
    }
    assert!(
        wildcards > 0,
        "no wildcard resource found: is the walk broken?"
    );
}

// --- versions, backend, hard-coded values -------------------------------------------------------

/// `(major, minor)` of a version constraint such as `>= 1.10` or `~> 6.0`.
fn constraint(text: &str, operator: &str) -> Option<(u32, u32)> {
    let version = text.trim().strip_prefix(operator)?.trim();
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[test]
fn versions_pin_opentofu_and_the_aws_provider() {
    let versions = tf_file("tofu/versions.tf");
    let terraform = blocks(&versions.body, "terraform")
        .next()
        .expect("tofu/versions.tf: terraform block");
    let required = attr(&terraform.body, "required_version")
        .and_then(string_value)
        .expect("tofu/versions.tf: required_version");
    assert!(
        constraint(&required, ">=").is_some_and(|version| version >= (1, 10)),
        "tofu/versions.tf: required_version must be >= 1.10, got {required}"
    );
    let providers = blocks(&terraform.body, "required_providers")
        .next()
        .expect("tofu/versions.tf: required_providers");
    let Some(Expression::Object(aws)) = attr(&providers.body, "aws") else {
        panic!("tofu/versions.tf: required_providers.aws must be an object");
    };
    let field = |name: &str| {
        aws.iter()
            .find(|(key, _)| object_key(key).as_deref() == Some(name))
            .and_then(|(_, value)| string_value(value))
    };
    assert_eq!(field("source").as_deref(), Some("hashicorp/aws"));
    let version = field("version").expect("tofu/versions.tf: aws provider version");
    // Both majors the configuration is tested with: 5.100 (the provider `cargo xtask rehearse`
    // applies with) up to, not including, the next untested major.
    let parts: Vec<&str> = version.split(',').map(str::trim).collect();
    assert!(
        parts.len() == 2
            && constraint(parts[0], ">=") == Some((5, 100))
            && constraint(parts[1], "<") == Some((7, 0)),
        "tofu/versions.tf: the aws provider must be constrained to \">= 5.100, < 7.0\", got {version}"
    );
    // Every module accepts the root's range (a module may only set a lower bound).
    for tf in tf_files() {
        if !tf.path.ends_with("versions.tf") || tf.path == "tofu/versions.tf" {
            continue;
        }
        let Some(terraform) = blocks(&tf.body, "terraform").next() else {
            continue;
        };
        for providers in blocks(&terraform.body, "required_providers") {
            let Some(Expression::Object(aws)) = attr(&providers.body, "aws") else {
                continue;
            };
            let module_version = aws
                .iter()
                .find(|(key, _)| object_key(key).as_deref() == Some("version"))
                .and_then(|(_, value)| string_value(value))
                .unwrap_or_default();
            assert!(
                constraint(&module_version, ">=").is_some_and(|lower| lower <= (5, 100)),
                "{}: the aws provider constraint must admit 5.100, got {module_version}",
                tf.path
            );
        }
    }
}

#[test]
fn the_backend_uses_a_lockfile_and_commits_no_bucket() {
    let versions = tf_file("tofu/versions.tf");
    let terraform = blocks(&versions.body, "terraform")
        .next()
        .expect("terraform block");
    let backends = labelled(&terraform.body, "backend", &["s3"]);
    let backend = backends.first().expect("tofu/versions.tf: backend \"s3\"");
    assert!(
        matches!(
            attr(&backend.body, "use_lockfile"),
            Some(Expression::Bool(true))
        ),
        "tofu/versions.tf: the s3 backend needs use_lockfile = true"
    );
    for key in ["bucket", "key", "region", "dynamodb_table", "role_arn"] {
        assert!(
            attr(&backend.body, key).is_none(),
            "tofu/versions.tf: backend.{key} belongs in -backend-config (partial configuration)"
        );
    }
}

/// A 12-digit AWS account id or a region code such as `eu-central-1` in a literal.
fn hard_coded(text: &str) -> Option<String> {
    for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if token.len() == 12 && token.chars().all(|c| c.is_ascii_digit()) {
            return Some(token.to_string());
        }
        let parts: Vec<&str> = token.split('-').collect();
        if parts.len() == 3
            && parts[0].len() == 2
            && parts[0].chars().all(|c| c.is_ascii_lowercase())
            && parts[1].chars().all(|c| c.is_ascii_lowercase())
            && !parts[1].is_empty()
            && parts[2].len() == 1
            && parts[2].chars().all(|c| c.is_ascii_digit())
        {
            return Some(token.to_string());
        }
    }
    None
}

#[test]
fn no_account_id_or_region_is_hard_coded() {
    for file in tf_files() {
        walk_code(&file.body, &mut |expr| {
            for text in literals(expr, &BTreeMap::new()) {
                if let Some(found) = hard_coded(&text) {
                    panic!(
                        "{}: `{found}` is hard-coded; use data sources or variables",
                        file.path
                    );
                }
            }
        });
    }
    assert_eq!(
        hard_coded("arn:aws:iam::123456789012:root").as_deref(),
        Some("123456789012")
    );
    assert_eq!(
        hard_coded("kinesis.eu-central-1.amazonaws").as_deref(),
        Some("eu-central-1")
    );
}

#[test]
fn modules_follow_the_layout_conventions() {
    let mut dirs = vec!["tofu".to_string()];
    let modules = repo_root().join("tofu/modules");
    for entry in std::fs::read_dir(&modules).expect("tofu/modules exists") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            dirs.push(format!("tofu/modules/{name}"));
        }
    }
    for required in [
        "ingestion_api",
        "stream",
        "consumer",
        "delivery",
        "catalog",
        "analytics",
        "ci_access",
        "observability",
        "lambda_function",
        "bucket",
    ] {
        assert!(
            dirs.contains(&format!("tofu/modules/{required}")),
            "tofu/modules/{required} is missing"
        );
    }
    for dir in dirs {
        for file in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"] {
            assert!(
                Path::new(&repo_root().join(&dir).join(file)).is_file(),
                "{dir}/{file} is missing"
            );
        }
        for file in module_files(&dir) {
            for variable in blocks(&file.body, "variable") {
                for key in ["type", "description"] {
                    assert!(
                        attr(&variable.body, key).is_some(),
                        "{}: {} has no {key}",
                        file.path,
                        describe(variable)
                    );
                }
            }
            for output in blocks(&file.body, "output") {
                assert!(
                    attr(&output.body, "description").is_some(),
                    "{}: {} has no description",
                    file.path,
                    describe(output)
                );
            }
        }
    }
}
