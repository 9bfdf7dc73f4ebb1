//! `cargo xtask rehearse`: the OpenTofu deploy rehearsal against moto's server on loopback.
//!
//! A temporary copy of `tofu/` (with the files it reads: `sql/tables.json`, `sql/queries/`,
//! the order schema, and placeholder Lambda zips) gets override files that exist only there:
//! a local backend, the provider's endpoints pointed at moto, skip flags, and one workaround per
//! moto gap (each commented with the gap and why AWS accepts the real configuration). Then:
//! init (`-plugin-dir` mirror), validate, plan, apply (every planned resource must be created),
//! a second plan that must be empty, a plan with every setting of `tofu/pipeline.bounds.json` at
//! its minimum and one at its maximum (both must plan), the CI deploy role assumed through moto's STS with moto's
//! IAM enforcement on (plan, then a small change), and destroy (the state must end empty).
//! Prints a table of resources planned/created/destroyed and each step's wall time.
//!
//! Where no terraform/tofu binary or no provider mirror exists, it prints a loud `SKIPPED:` line
//! and succeeds (the rehearsal is not promised on every machine).

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

/// Where the provider mirror is looked for unless `ORDERFLOW_TF_PLUGIN_DIR` names one.
const DEFAULT_PLUGIN_DIR: &str = "/opt/tf-plugins";
/// The region the rehearsal deploys to (any valid code; moto accepts all).
const REGION: &str = "eu-central-1";
/// Services the configuration calls; every one is pointed at moto.
const SERVICES: &[&str] = &[
    "apigateway",
    "athena",
    "cloudwatch",
    "dynamodb",
    "firehose",
    "glue",
    "iam",
    "kinesis",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sns",
    "sqs",
    "sts",
];

/// moto's server, started with the venv's Python (the same as its `moto_server` script) after
/// one patch for moto gap 8, in this process only; the installed moto is not changed.
///
/// moto gap 8: with its IAM checks on (the deploy role's steps), moto 5.2.5 answers
/// `SignatureDoesNotMatch` (HTTP 403, an XML body) to every correctly signed request without a
/// body to a non-S3 service, i.e. the REST-JSON GETs (and DELETEs) of Lambda and API Gateway
/// (GetFunction, GetRestApi, GetApiKey, GetAccount, ...), before any permission is looked at.
/// `IAMRequestBase._create_aws_request` (moto/iam/access_control.py:344-349) rebuilds the
/// request with `data=self._body or self._data`: an empty body falls back to `self._data`, which
/// `BaseResponse.setup_class` (moto/core/responses.py:252-268) fills with the query parameters,
/// or, without any, with the request's headers. The recomputed payload hash is then that of
/// those parameters URL-encoded, where the client signed the empty body's (SigV4: the payload
/// hash is SHA-256 of the request body, here empty). The patch gives the rebuilt request an empty
/// body when the request had none on the wire (no body, no or a zero Content-Length, not
/// chunked); form-encoded POSTs (IAM, STS, SQS...), whose body the server has already parsed into
/// `self._data`, keep moto's path. Signature and permission checks run unchanged (a wrong secret
/// is still refused, an action missing from the role still denied).
const MOTO_SERVER: &str = r#"
import sys
from moto.iam import access_control

moto_create_aws_request = access_control.IAMRequestBase._create_aws_request

def create_aws_request(self):
    request = moto_create_aws_request(self)
    headers = self._headers
    no_body = headers.get("Content-Length", "0") == "0" and "Transfer-Encoding" not in headers
    if not self._body and no_body:
        request.data = b""
    return request

access_control.IAMRequestBase._create_aws_request = create_aws_request
from moto.server import main
sys.exit(main(sys.argv[1:]))
"#;

/// Options of `cargo xtask rehearse`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Options {
    /// Initialise from the provider registry instead of a mirror (the GitHub job with OpenTofu).
    #[arg(long)]
    pub(crate) registry: bool,
    /// Keep the temporary directory (state, logs) for inspection.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Fail when the deploy role's plan or change is denied under moto's IAM checks.
    #[arg(long)]
    pub(crate) strict_deploy_role: bool,
}

/// One step's name, wall time and outcome, for the closing table.
struct Timed {
    name: String,
    seconds: f64,
    note: String,
}

/// Runs the rehearsal from the repository `root`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let Some(tf) = find_binary() else {
        println!(
            "SKIPPED: cargo xtask rehearse: neither `tofu` nor `terraform` is on PATH (or ORDERFLOW_TOFU); the deploy rehearsal did not run"
        );
        return Ok(());
    };
    let plugin_dir = std::env::var_os("ORDERFLOW_TF_PLUGIN_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_PLUGIN_DIR), PathBuf::from);
    if !options.registry && !has_aws_provider(&plugin_dir) {
        println!(
            "SKIPPED: cargo xtask rehearse: no hashicorp/aws provider mirror at {} (set ORDERFLOW_TF_PLUGIN_DIR, or pass --registry where the registry is reachable); the deploy rehearsal did not run",
            plugin_dir.display()
        );
        return Ok(());
    }
    let mut steps = Vec::new();

    let t = Instant::now();
    let moto_server = moto_server(root)?;
    steps.push(timed("moto venv", t, ""));

    let work = std::env::temp_dir().join(format!("orderflow-rehearse-{}", std::process::id()));
    let _cleanup = Cleanup {
        dir: work.clone(),
        keep: options.keep,
    };
    let tofu_dir = prepare_copy(root, &work)?;

    let port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    write_overrides(&tofu_dir, &endpoint)?;
    let moto_log = fs::File::create(work.join("moto.log"))?;
    let server = Command::new(moto_server.with_file_name("python"))
        .args([
            "-c",
            MOTO_SERVER,
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("MOTO_ALLOW_NONEXISTENT_REGION", "false")
        .stdout(moto_log.try_clone()?)
        .stderr(moto_log)
        .spawn()
        .with_context(|| format!("could not start {}", moto_server.display()))?;
    let _server = KillOnDrop(server);
    wait_for(&format!("{endpoint}/moto-api/"))?;
    eprintln!("rehearse: moto on {endpoint}, work dir {}", work.display());

    let runner = Runner {
        tf: tf.clone(),
        dir: tofu_dir.clone(),
        credentials: vec![
            ("AWS_ACCESS_KEY_ID".into(), "rehearsal".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "rehearsal".into()),
        ],
    };
    let var_args = [
        "-var-file=prod.tfvars",
        "-var-file=rehearsal.tfvars",
        "-input=false",
        "-no-color",
    ];

    // init: from the mirror only (no network), or from the registry in the GitHub job.
    let t = Instant::now();
    let plugin_arg = format!("-plugin-dir={}", plugin_dir.display());
    let mut init = vec!["init", "-input=false", "-no-color"];
    if !options.registry {
        init.push(&plugin_arg);
    }
    runner.run("init", &init)?;
    steps.push(timed("init", t, ""));

    let t = Instant::now();
    runner.run("validate", &["validate", "-no-color"])?;
    steps.push(timed("validate", t, ""));

    let t = Instant::now();
    let planned = runner.plan("plan", &var_args, "first.tfplan")?;
    ensure!(
        planned.change == 0 && planned.destroy == 0 && planned.add > 0,
        "first plan: expected only additions, got {planned:?}"
    );
    steps.push(timed("plan", t, &format!("{} to add", planned.add)));

    let t = Instant::now();
    let output = runner.run(
        "apply",
        &["apply", "-input=false", "-no-color", "first.tfplan"],
    )?;
    let created = count_lines(&output, ": Creation complete after");
    let in_state = runner.state_count()?;
    ensure!(
        created == planned.add && in_state == planned.add,
        "apply: {} planned, {created} created, {in_state} in the state",
        planned.add
    );
    steps.push(timed("apply", t, &format!("{created} created")));

    let t = Instant::now();
    let again = runner.plan("second plan", &var_args, "second.tfplan")?;
    ensure!(
        again.is_empty(),
        "second plan is not empty (the configuration is not idempotent): {again:?}; see {}",
        tofu_dir.join("second plan.log").display()
    );
    steps.push(timed("second plan", t, "no changes"));

    // Every setting at the edges of its bounds must plan: tofu/pipeline.bounds.json is only the
    // one list of what is allowed if no other part of the configuration refuses a value inside
    // it. The plans only read the state (no refresh) and are not applied.
    let t = Instant::now();
    let pipeline_path = tofu_dir.join("pipeline.json");
    let pipeline = fs::read_to_string(&pipeline_path)?;
    let bounds = fs::read_to_string(tofu_dir.join("pipeline.bounds.json"))?;
    let mut edge_args = var_args.to_vec();
    edge_args.push("-refresh=false");
    for (edge, text) in bound_edges(&pipeline, &bounds)? {
        fs::write(&pipeline_path, text)?;
        runner
            .plan(&format!("plan at the {edge}"), &edge_args, "edge.tfplan")
            .with_context(|| format!("every setting at its {edge} does not plan"))?;
    }
    fs::write(&pipeline_path, pipeline)?;
    steps.push(timed(
        "bounds' edges",
        t,
        "every bounded setting at its minimum, then its maximum: both plan",
    ));

    // cargo xtask redrive-aws on the applied resources (redrive_rehearsal.rs).
    let t = Instant::now();
    let output = |name: &str| -> Result<String> {
        Ok(runner
            .run("output", &["output", "-raw", "-no-color", name])?
            .trim()
            .to_string())
    };
    let (stream, queue_url, table, function) = (
        output("kinesis_stream_name")?,
        output("consumer_on_failure_queue_url")?,
        output("dynamodb_table_name")?,
        output("consumer_function_name")?,
    );
    let note = crate::redrive_rehearsal::run(
        root,
        &crate::redrive_rehearsal::Deployed {
            endpoint: &endpoint,
            region: REGION,
            stream: &stream,
            queue_url: &queue_url,
            table: &table,
            function: &function,
        },
    )?;
    steps.push(timed("redrive-aws", t, &note));

    // The CI deploy role, with moto's IAM checks on.
    let role_arn = runner
        .run(
            "output",
            &["output", "-raw", "-no-color", "ci_deploy_role_arn"],
        )?
        .trim()
        .to_string();
    let t = Instant::now();
    let session = assume_deploy_role(&moto_server, &endpoint, &role_arn)?;
    // assume_deploy_role rewrote moto's copy of the role's three policies (Allow actions on "*",
    // moto's names added), so the deploy role's plan would see them differ from the
    // configuration; in AWS they are as applied, and the deploy role cannot write them (CI
    // path). Ignored in the copy for these steps only.
    fs::write(
        tofu_dir.join("modules/ci_access/rehearsal_deploy_role_override.tf"),
        override_blocks(
            "aws_iam_policy",
            &["read", "write_data", "write_compute"],
            "lifecycle {\n    ignore_changes = [policy]\n  }",
        ),
    )?;
    // From here on every request must be signed by known credentials and allowed by the caller's
    // policies (moto's INITIAL_NO_AUTH_ACTION_COUNT, reset through its management API).
    post_text(&format!("{endpoint}/moto-api/reset-auth"), "0")?;
    let deploy = Runner {
        credentials: session,
        ..runner.clone_base()
    };
    let deploy_result = deploy_role_steps(&deploy, &tofu_dir, &var_args);
    match deploy_result {
        Ok(()) => steps.push(timed(
            "deploy role",
            t,
            "plan: no changes; consumer.batch_size - 1: 1 updated",
        )),
        Err(error) if !options.strict_deploy_role => {
            // Not proven, and said so loudly: moto's IAM emulation names some operations
            // differently from IAM (see assume_deploy_role), so a denial here may be moto's.
            println!(
                "NOT PROVEN: the CI deploy role under moto's IAM checks: {error:#}\n(the rehearsal goes on; --strict-deploy-role makes this fatal)"
            );
            steps.push(timed(
                "deploy role",
                t,
                "NOT PROVEN (denied by moto, see above)",
            ));
        }
        Err(error) => return Err(error),
    }

    // The administrator destroys: IAM checks off again.
    post_text(&format!("{endpoint}/moto-api/reset-auth"), "inf")?;
    let t = Instant::now();
    // Not a moto gap: the configuration protects prod from `destroy` on purpose (the DynamoDB
    // table's deletion protection; buckets that are not emptied, and the access-log bucket has
    // received moto's access logs). A rehearsal's teardown lifts both in its copy first, the
    // way an operator retiring an environment would, then destroys.
    fs::write(
        tofu_dir.join("modules/consumer/rehearsal_teardown_override.tf"),
        "resource \"aws_dynamodb_table\" \"this\" {\n  deletion_protection_enabled = false\n}\n",
    )?;
    fs::write(
        tofu_dir.join("modules/bucket/rehearsal_teardown_override.tf"),
        override_blocks("aws_s3_bucket", &["this"], "force_destroy = true"),
    )?;
    let mut teardown_args = vec!["apply", "-auto-approve"];
    teardown_args.extend_from_slice(&var_args);
    runner.run("teardown settings", &teardown_args)?;

    // moto gap 7: moto 5.2.5 has no DeleteNamedQuery ("The delete_named_query action has not
    // been implemented", HTTP 500, which the provider retries until its timeout). AWS has it
    // (Athena API Reference, DeleteNamedQuery). The named queries leave the state without an
    // API call; everything else is destroyed through the API.
    let state = runner.run("state list", &["state", "list"])?;
    let queries: Vec<&str> = state
        .lines()
        .filter(|line| line.contains("aws_athena_named_query."))
        .collect();
    if !queries.is_empty() {
        let mut args = vec!["state", "rm"];
        args.extend(queries.iter().copied());
        runner.run("state rm named queries", &args)?;
    }
    let output = runner.run(
        "destroy",
        &[
            "destroy",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var-file=prod.tfvars",
            "-var-file=rehearsal.tfvars",
        ],
    )?;
    let destroyed = count_lines(&output, ": Destruction complete after");
    let left = runner.state_count()?;
    ensure!(
        destroyed + queries.len() == planned.add && left == 0,
        "destroy: {destroyed} of {} destroyed ({} named queries removed from the state), {left} left in the state",
        planned.add,
        queries.len()
    );
    steps.push(timed(
        "destroy",
        t,
        &format!(
            "{destroyed} destroyed, {} named queries only removed from the state (moto gap 7)",
            queries.len()
        ),
    ));

    let mut table = String::new();
    let _ = writeln!(table, "\nrehearsal with {}:", tf.display());
    let _ = writeln!(
        table,
        "  resources: {} planned, {created} created, {destroyed} destroyed (+{} removed from the state)",
        planned.add,
        queries.len()
    );
    let _ = writeln!(table, "  {:<22} {:>9}  result", "step", "seconds");
    for step in &steps {
        let _ = writeln!(
            table,
            "  {:<22} {:>9.1}  {}",
            step.name, step.seconds, step.note
        );
    }
    let _ = writeln!(
        table,
        "  {:<22} {:>9.1}",
        "total",
        started.elapsed().as_secs_f64()
    );
    println!("{table}");
    Ok(())
}

/// With the deploy role's session: a plan that must be empty, then a small change (one pipeline
/// setting, as a pull request would make) planned and applied.
fn deploy_role_steps(deploy: &Runner, tofu_dir: &Path, var_args: &[&str]) -> Result<()> {
    let plan = deploy.plan("deploy-role plan", var_args, "deploy.tfplan")?;
    ensure!(
        plan.is_empty(),
        "plan with the deploy role is not empty: {plan:?}"
    );
    let settings_path = tofu_dir.join("pipeline.json");
    let mut settings: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&settings_path)?)?;
    let batch = settings["consumer"]["batch_size"]
        .as_u64()
        .context("pipeline.json: consumer.batch_size")?;
    settings["consumer"]["batch_size"] = (batch - 1).into();
    fs::write(&settings_path, serde_json::to_string_pretty(&settings)?)?;
    let change = deploy.plan("deploy-role change plan", var_args, "change.tfplan")?;
    ensure!(
        change.add == 0 && change.change == 1 && change.destroy == 0,
        "the small change should update one resource, got {change:?}"
    );
    deploy.run(
        "deploy-role apply",
        &["apply", "-input=false", "-no-color", "change.tfplan"],
    )?;
    Ok(())
}

fn timed(name: &str, started: Instant, note: &str) -> Timed {
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("rehearse: {name}: {seconds:.1}s {note}");
    Timed {
        name: name.to_string(),
        seconds,
        note: note.to_string(),
    }
}

/// `ORDERFLOW_TOFU`, else `tofu`, else `terraform` on PATH.
fn find_binary() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("ORDERFLOW_TOFU") {
        return Some(PathBuf::from(explicit)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH")?;
    ["tofu", "terraform"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn has_aws_provider(plugin_dir: &Path) -> bool {
    ["registry.terraform.io", "registry.opentofu.org"]
        .iter()
        .any(|host| {
            fs::read_dir(plugin_dir.join(host).join("hashicorp/aws"))
                .is_ok_and(|mut versions| versions.next().is_some())
        })
}

/// Installs (or reuses) moto's venv through `.ci/moto-venv`; the path of `moto_server`.
fn moto_server(root: &Path) -> Result<PathBuf> {
    let output = Command::new("bash")
        .arg(root.join(".ci/moto-venv"))
        .stderr(Stdio::inherit())
        .output()
        .context("could not run .ci/moto-venv")?;
    ensure!(output.status.success(), ".ci/moto-venv failed");
    let path = PathBuf::from(String::from_utf8(output.stdout)?.trim());
    ensure!(path.is_file(), "{} does not exist", path.display());
    Ok(path)
}

/// Copies `tofu/` and what it reads into `work`, keeping the relative layout; returns the copy of
/// `tofu/`. Placeholder zips stand in for the Lambdas: moto stores functions but never runs them.
fn prepare_copy(root: &Path, work: &Path) -> Result<PathBuf> {
    if work.exists() {
        fs::remove_dir_all(work)?;
    }
    copy_tree(&root.join("tofu"), &work.join("tofu"))?;
    copy_tree(&root.join("sql/queries"), &work.join("sql/queries"))?;
    for file in ["sql/tables.json", "crates/domain/schema/order.schema.json"] {
        fs::create_dir_all(work.join(file).parent().expect("a parent"))?;
        fs::copy(root.join(file), work.join(file)).with_context(|| format!("copy {file}"))?;
    }
    let dist = work.join("dist/lambdas");
    fs::create_dir_all(&dist)?;
    let mut sums = String::new();
    for name in crate::lambdas::Lambdas::read()?.names() {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut bytes);
        zip.start_file(
            "bootstrap",
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )?;
        zip.write_all(b"#!/bin/sh\n# placeholder: the rehearsal deploys to moto, which never runs it\nexit 1\n")?;
        zip.finish()?;
        let bytes = bytes.into_inner();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let _ = writeln!(sums, "{digest}  {name}.zip");
        fs::write(dist.join(format!("{name}.zip")), bytes)?;
    }
    fs::write(dist.join("SHA256SUMS"), sums)?;
    Ok(work.join("tofu"))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("list {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        // Local state and provider caches of a developer's own runs are not the configuration.
        if name_str.starts_with(".terraform") || name_str.contains(".tfstate") {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else {
            fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// One `resource "<kind>" "<name>" { <body> }` block per name, for an override file.
fn override_blocks(kind: &str, names: &[&str], body: &str) -> String {
    let mut blocks = String::new();
    for name in names {
        let _ = writeln!(blocks, "resource \"{kind}\" \"{name}\" {{\n  {body}\n}}\n");
    }
    blocks
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The override files (OpenTofu/Terraform merge `*_override.tf` over the configuration); they
/// exist only in the temporary copy.
fn write_overrides(tofu_dir: &Path, endpoint: &str) -> Result<()> {
    let mut endpoints = String::new();
    for service in SERVICES {
        let _ = writeln!(endpoints, "    {service:<10} = \"{endpoint}\"");
    }
    let root = format!(
        r#"# Rehearsal only (cargo xtask rehearse): state in this temporary directory, every AWS call to
# moto's server on loopback. Credentials come from the environment: fake ones for the
# administrator, the deploy role's session for the CI steps.
terraform {{
  backend "local" {{
    path = "rehearsal.tfstate"
  }}
}}

provider "aws" {{
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  # moto serves S3 on one host: bucket names go in the path, not the host name.
  s3_use_path_style = true

  endpoints {{
{endpoints}  }}
}}
"#
    );
    fs::write(tofu_dir.join("rehearsal_override.tf"), root)?;
    fs::write(
        tofu_dir.join("rehearsal.tfvars"),
        format!(
            "aws_region        = \"{REGION}\"\ngithub_repository = \"example/orderflow\"\ntofu_state_bucket = \"orderflow-rehearsal-state\"\n"
        ),
    )?;

    // moto gap 1: moto 5.2.5 answers PutBucketLogging with HTTP 500 (AttributeError in
    // FakeBucket._log_permissions_enabled_policy, which calls .get on every statement's
    // Principal) when the target bucket's policy has a statement with `"Principal": "*"`, here
    // the TLS-only deny; the provider retries the 500 until its timeout. AWS accepts both
    // spellings: "Principal": "*" and {"AWS": "*"} are equivalent (IAM User Guide, "AWS JSON
    // policy elements: Principal", anonymous/all principals), so moto gets the second.
    // The override is on the bucket module, so every bucket's policy gets that spelling.
    fs::write(
        tofu_dir.join("modules/bucket/rehearsal_override.tf"),
        r#"# Rehearsal only: see crates/xtask/src/rehearse.rs (moto gap 1).
resource "aws_s3_bucket_policy" "this" {
  policy = replace(data.aws_iam_policy_document.this.json, "/\"Principal\":\\s*\"\\*\"/", "\"Principal\": {\"AWS\": \"*\"}")
}
"#,
    )?;

    // moto gap 2: moto's CreateEventSourceMapping finds Kinesis sources by stream ARN only and
    // answers "ResourceNotFoundException: Invalid EventSourceArn" for a stream consumer's ARN.
    // AWS maps enhanced fan-out consumers by their consumer ARN (Lambda Developer Guide, "Using
    // Lambda with Kinesis Data Streams": "Configuring enhanced fan-out stream consumers", which
    // passes the consumer ARN as --event-source-arn; provider docs for
    // aws_lambda_event_source_mapping: event_source_arn may be a stream consumer ARN). In moto the
    // mapping reads the stream itself.
    fs::write(
        tofu_dir.join("modules/consumer/rehearsal_override.tf"),
        r#"# Rehearsal only: see crates/xtask/src/rehearse.rs (moto gap 2).
resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn = var.stream_arn
}
"#,
    )?;

    // moto gaps 3 to 6 show up only in the second plan (idempotence): moto drops or rewrites
    // what the provider sent, so the refreshed state differs from the configuration although
    // nothing changed. Each is ignored in the rehearsal only, for the attribute moto loses;
    // the second plan must be empty for everything else.
    //   3. Kinesis: moto 5.2.5's CreateStream ignores `Tags` (moto/kinesis/responses.py passes
    //      only name, shard count and mode), so the provider's default tags read back empty.
    //      AWS's CreateStream takes Tags (Kinesis API Reference, CreateStream: Tags).
    //   4. Lambda: moto's GetFunction returns no LoggingConfig (moto/awslambda/models.py has
    //      none). AWS returns the function's LoggingConfig (Lambda API Reference,
    //      GetFunctionConfiguration: LoggingConfig).
    //   5. Firehose: moto returns the Lambda processor without its BufferSizeInMBs and
    //      BufferIntervalInSeconds parameters. AWS documents both as processor parameters
    //      (Firehose API Reference, ProcessorParameter).
    //   6. API Gateway: moto re-serialises a model's schema (whitespace) and reports gateway
    //      responses with an empty responseParameters map; the deployment's trigger hashes
    //      those resources as refreshed, so it changes although nothing was edited. Ignored for
    //      the trigger only.
    fs::write(
        tofu_dir.join("modules/stream/rehearsal_override.tf"),
        r#"# Rehearsal only: see crates/xtask/src/rehearse.rs (moto gap 3).
resource "aws_kinesis_stream" "this" {
  lifecycle {
    ignore_changes = [tags, tags_all]
  }
}
"#,
    )?;
    fs::write(
        tofu_dir.join("modules/lambda_function/rehearsal_override.tf"),
        r#"# Rehearsal only: see crates/xtask/src/rehearse.rs (moto gap 4).
resource "aws_lambda_function" "this" {
  lifecycle {
    ignore_changes = [logging_config]
  }
}
"#,
    )?;
    fs::write(
        tofu_dir.join("modules/delivery/rehearsal_override.tf"),
        r#"# Rehearsal only: see crates/xtask/src/rehearse.rs (moto gap 5).
resource "aws_kinesis_firehose_delivery_stream" "this" {
  lifecycle {
    ignore_changes = [extended_s3_configuration[0].processing_configuration]
  }
}
"#,
    )?;
    fs::write(
        tofu_dir.join("modules/ingestion_api/rehearsal_override.tf"),
        r#"# Rehearsal only: see crates/xtask/src/rehearse.rs (moto gap 6).
resource "aws_api_gateway_deployment" "this" {
  lifecycle {
    ignore_changes = [triggers]
  }
}
"#,
    )?;
    Ok(())
}

fn wait_for(url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ureq::get(url).call().is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("moto did not answer {url} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn post_text(url: &str, body: &str) -> Result<()> {
    ureq::post(url)
        .send(body)
        .with_context(|| format!("POST {url}"))?;
    Ok(())
}

/// Assumes the deploy role the way GitHub Actions does (AssumeRoleWithWebIdentity), through
/// moto's STS, with boto3 from moto's venv; returns the session's environment variables. moto
/// does not verify the web identity token or the trust policy's OIDC conditions.
fn assume_deploy_role(
    moto_server: &Path,
    endpoint: &str,
    role_arn: &str,
) -> Result<Vec<(String, String)>> {
    let python = moto_server.with_file_name("python");
    let script = r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name=sys.argv[3],
          aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal")
iam, sts = boto3.client("iam", **kw), boto3.client("sts", **kw)
role = sys.argv[2].rsplit("/", 1)[1]

# moto's IAM checks know actions only: it evaluates most services' calls against Resource "*"
# (only S3 buckets, IAM roles, SQS queues and STS roles get their ARN), treats conditions of
# identity policies as met, ignores permissions boundaries, and names API Gateway and CloudWatch
# calls by operation (apigateway:GetRestApi, monitoring:PutMetricAlarm) where IAM uses
# apigateway:GET and cloudwatch:PutMetricAlarm; S3 HeadBucket is s3:HeadBucket to moto
# (ACTION_MAP in moto/s3/responses.py), an action IAM does not have: AWS authorises HeadBucket
# as s3:ListBucket (S3 API Reference, HeadBucket: Permissions). moto's copy of the role's policies is therefore
# rewritten to what moto can check: every Allow statement's actions on "*", with moto's names
# added; Deny statements are dropped (moto would apply them without their conditions). What is
# left proves that every call the deploy role makes is among its allowed actions, no more.
VERBS = {"GET": ["Get*"], "POST": ["Create*", "Put*", "Import*", "Tag*"], "PUT": ["Put*", "Import*"],
         "PATCH": ["Update*"], "DELETE": ["Delete*", "Untag*"], "*": ["*"]}
def widen(doc):
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    out = []
    for st in statements:
        if st.get("Effect") != "Allow" or "Action" not in st:
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        extra = []
        for a in actions:
            service, _, name = a.partition(":")
            if service == "apigateway":
                extra += ["apigateway:" + n for n in VERBS.get(name, [])]
            if service == "cloudwatch":
                extra.append("monitoring:" + name)
            if a == "s3:ListBucket":
                extra.append("s3:HeadBucket")
        out.append({"Effect": "Allow", "Action": sorted(set(actions + extra)), "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": out}
for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(widen(doc)))
for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
    arn = attached["PolicyArn"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    for old in versions:
        if not old["IsDefaultVersion"] and len(versions) >= 5:
            iam.delete_policy_version(PolicyArn=arn, VersionId=old["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(widen(doc)), SetAsDefault=True)
c = sts.assume_role_with_web_identity(RoleArn=sys.argv[2], RoleSessionName="rehearsal-deploy",
                                      WebIdentityToken="rehearsal-token")["Credentials"]
print(c["AccessKeyId"]); print(c["SecretAccessKey"]); print(c["SessionToken"])
"#;
    let output = Command::new(&python)
        .args(["-c", script, endpoint, role_arn, REGION])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run {}", python.display()))?;
    ensure!(output.status.success(), "AssumeRoleWithWebIdentity failed");
    let text = String::from_utf8(output.stdout)?;
    let mut lines = text.lines();
    let mut next = |what: &str| {
        lines
            .next()
            .map(str::to_string)
            .with_context(|| format!("no {what}"))
    };
    Ok(vec![
        ("AWS_ACCESS_KEY_ID".into(), next("access key")?),
        ("AWS_SECRET_ACCESS_KEY".into(), next("secret key")?),
        ("AWS_SESSION_TOKEN".into(), next("session token")?),
    ])
}

/// `pipeline.json` with every setting of `pipeline.bounds.json` at its minimum, and again at its
/// maximum (a setting without one keeps its value), as `(edge, text)` pairs.
fn bound_edges(pipeline: &str, bounds: &str) -> Result<Vec<(&'static str, String)>> {
    let pipeline: serde_json::Value =
        serde_json::from_str(pipeline).context("tofu/pipeline.json")?;
    let bounds: serde_json::Value =
        serde_json::from_str(bounds).context("tofu/pipeline.bounds.json")?;
    let bounds = bounds["bounds"]
        .as_object()
        .context("tofu/pipeline.bounds.json: no bounds object")?;
    let mut edges = Vec::new();
    for (edge, field) in [("minimum", "min"), ("maximum", "max")] {
        let mut edited = pipeline.clone();
        for (key, bound) in bounds {
            let value = &bound[field];
            if value.is_null() {
                continue;
            }
            // "section.*" stands for every key of the section.
            let paths: Vec<Vec<String>> = match key.strip_suffix(".*") {
                Some(section) => edited[section]
                    .as_object()
                    .with_context(|| format!("tofu/pipeline.json: no section {section}"))?
                    .keys()
                    .map(|name| vec![section.to_owned(), name.clone()])
                    .collect(),
                None => vec![key.split('.').map(str::to_owned).collect()],
            };
            for path in paths {
                let mut slot = &mut edited;
                for part in &path {
                    slot = slot
                        .get_mut(part)
                        .with_context(|| format!("tofu/pipeline.json: no setting {key}"))?;
                }
                *slot = value.clone();
            }
        }
        edges.push((edge, serde_json::to_string_pretty(&edited)?));
    }
    Ok(edges)
}

/// `Plan: N to add, N to change, N to destroy.`, or all zero for "No changes."
#[derive(Debug, Default)]
struct PlanCounts {
    add: usize,
    change: usize,
    destroy: usize,
}

impl PlanCounts {
    fn is_empty(&self) -> bool {
        self.add == 0 && self.change == 0 && self.destroy == 0
    }
}

fn parse_plan(output: &str) -> Result<PlanCounts> {
    if output.contains("No changes.") {
        return Ok(PlanCounts::default());
    }
    let line = output
        .lines()
        .find(|line| line.starts_with("Plan: "))
        .context("no `Plan:` line in the plan's output")?;
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(numbers.len() >= 3, "cannot read `{line}`");
    Ok(PlanCounts {
        add: numbers[0],
        change: numbers[1],
        destroy: numbers[2],
    })
}

fn count_lines(output: &str, needle: &str) -> usize {
    output.lines().filter(|line| line.contains(needle)).count()
}

/// Runs terraform/tofu in the copy with one set of credentials; each step's output is kept in
/// `<step>.log` there and shown (last lines) when it fails.
struct Runner {
    tf: PathBuf,
    dir: PathBuf,
    credentials: Vec<(String, String)>,
}

impl Runner {
    fn clone_base(&self) -> Runner {
        Runner {
            tf: self.tf.clone(),
            dir: self.dir.clone(),
            credentials: Vec::new(),
        }
    }

    fn run(&self, step: &str, args: &[&str]) -> Result<String> {
        let mut command = Command::new(&self.tf);
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // No user CLI configuration (credentials helpers, other mirrors) leaks in.
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
        for (key, value) in &self.credentials {
            command.env(key, value);
        }
        let output = command
            .output()
            .with_context(|| format!("could not run {}", self.tf.display()))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let log = self.dir.join(format!("{step}.log"));
        fs::write(&log, &text)?;
        if !output.status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{step} failed ({}); last lines (all in {}):\n{}",
                output.status,
                log.display(),
                tail.join("\n")
            );
        }
        Ok(text)
    }

    fn plan(&self, step: &str, var_args: &[&str], out: &str) -> Result<PlanCounts> {
        let out_arg = format!("-out={out}");
        let mut args = vec!["plan"];
        args.extend_from_slice(var_args);
        args.push(&out_arg);
        parse_plan(&self.run(step, &args)?)
    }

    /// Managed resources in the state (data sources are not counted).
    fn state_count(&self) -> Result<usize> {
        let output = self.run("state list", &["state", "list"])?;
        Ok(output
            .lines()
            .filter(|line| {
                // Strip `module.<name>[key].` prefixes; what is left starts with `data.` for a
                // data source.
                let mut rest = line.trim();
                while let Some(inner) = rest.strip_prefix("module.") {
                    rest = inner
                        .split_once("].")
                        .or_else(|| inner.split_once('.'))
                        .map_or("", |(_, r)| r);
                }
                !rest.is_empty() && !rest.starts_with("data.")
            })
            .count())
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cleanup {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("rehearse: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
