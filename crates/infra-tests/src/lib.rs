//! Offline checks of the OpenTofu configuration in `tofu/`: the tests in `tests/` parse every
//! `.tf` file with `hcl-rs` and hold it against the files and code it deploys (`sql/tables.json`,
//! `tofu/pipeline.json`, the Lambdas' Cargo manifests and environment variables), and against the
//! project's IAM rules. This library is empty on purpose.
