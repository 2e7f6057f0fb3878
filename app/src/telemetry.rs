//! Structured logs with `tracing`: human-readable text by default, one JSON object per line with
//! `LOG_FORMAT=json`. Logs go to stderr; the filter comes from `RUST_LOG` / `--log-filter`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{ConfigError, LogFormat};

/// Installs the global subscriber. Call once, first thing after parsing settings.
pub fn init(format: LogFormat, filter: &str) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(filter).map_err(|e| ConfigError {
        variable: "RUST_LOG",
        problem: format!("is not a valid log filter: {e}"),
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests starting several servers in one process) keeps the first subscriber.
    drop(result);
    Ok(())
}
