//! The Lambdas' log subscriber (feature `lambda-logs`): what
//! `lambda_runtime::tracing::init_default_subscriber` sets up, with one level for every target.
//!
//! As there: lines on stdout without time stamps or targets (Lambda adds both), JSON when
//! Lambda's advanced logging controls set `AWS_LAMBDA_LOG_FORMAT=JSON` (the functions'
//! `logging_config` does), and the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else
//! INFO. Unlike there, `RUST_LOG` is one level, not `EnvFilter`'s per-target directives: the
//! directives' regex engine and Unicode tables were the largest part of each binary that logging
//! cost, for a feature the deployed functions do not use (see BENCHMARKS.md, Lambda artifacts).

use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// The level a Lambda logs at: `aws_level` (`AWS_LAMBDA_LOG_LEVEL`), else `rust_log`
/// (`RUST_LOG`), else INFO; a value that is not a level (`FATAL`, per-target directives) is INFO,
/// as in `lambda_runtime`.
pub fn lambda_log_level(aws_level: Option<&str>, rust_log: Option<&str>) -> LevelFilter {
    aws_level
        .or(rust_log)
        .and_then(|text| LevelFilter::from_str(text).ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Installs the global subscriber for a Lambda binary, from its environment.
///
/// # Panics
/// If a global subscriber is already installed (call it once, first thing in `main`).
pub fn init_lambda_logs() {
    let level = lambda_log_level(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level)
        .with_writer(std::io::stdout);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_lambda_then_rust_log_then_info() {
        assert_eq!(lambda_log_level(None, None), LevelFilter::INFO);
        assert_eq!(
            lambda_log_level(Some("DEBUG"), Some("error")),
            LevelFilter::DEBUG
        );
        assert_eq!(lambda_log_level(None, Some("warn")), LevelFilter::WARN);
        assert_eq!(lambda_log_level(Some("TRACE"), None), LevelFilter::TRACE);
        // Not levels: Lambda's FATAL and per-target directives fall back to INFO.
        assert_eq!(lambda_log_level(Some("FATAL"), None), LevelFilter::INFO);
        assert_eq!(
            lambda_log_level(None, Some("orderflow=debug")),
            LevelFilter::INFO
        );
    }
}
