//! `.github/preview.yml`: how a repository wants its previews built and run (DESIGN.md §7).
//!
//! The file is small and strict: unknown fields are errors (a typo must not be silently
//! ignored), and every value is checked while it is read, so an error carries the line and
//! column it came from. The result of [`parse`] is either a [`RepoConfig`] or a
//! [`ConfigError`] whose message is shown to the repository's maintainers in the check run.
//! Resource requests are bounded by the install's maximums ([`Limits`]).

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::Deserialize;

pub use crate::config::RepoLimits as Limits;
pub use crate::units::Quantity;

/// Where the file lives in a repository.
pub const PATH: &str = ".github/preview.yml";

/// A repository's preview configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    pub source: ImageSource,
    /// A Helm chart directory in the repository; `None`: the built-in web service.
    pub chart: Option<RelativePath>,
    pub port: u16,
    pub health: String,
    pub env: BTreeMap<String, String>,
    pub cpu: Quantity,
    pub memory: Quantity,
    /// Idle time after which the preview is removed; `None`: the install's default.
    pub ttl: Option<Duration>,
    /// Only pull requests touching these globs get a preview; empty: all.
    pub paths: Vec<String>,
}

/// Where the preview's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Built in the cluster from the head commit.
    Build {
        dockerfile: RelativePath,
        context: RelativePath,
    },
    /// Taken ready-made; `{sha}` is replaced by the head commit.
    Image(String),
}

impl ImageSource {
    /// The image reference for `sha` when ready-made.
    pub fn ready_image(&self, sha: &str) -> Option<String> {
        match self {
            Self::Image(template) => Some(template.replace("{sha}", sha)),
            Self::Build { .. } => None,
        }
    }
}

impl RepoConfig {
    /// The configuration of a repository without `.github/preview.yml`.
    pub fn defaults(limits: &Limits) -> Self {
        Self {
            source: ImageSource::Build {
                dockerfile: RelativePath("Dockerfile".into()),
                context: RelativePath(".".into()),
            },
            chart: None,
            port: 8080,
            health: "/".into(),
            env: BTreeMap::new(),
            cpu: limits.default_cpu.clone(),
            memory: limits.default_memory.clone(),
            ttl: None,
            paths: Vec::new(),
        }
    }
}

/// A problem in `.github/preview.yml`, with its position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{PATH} line {line}, column {column}: {}", self.message)
            }
            (Some(line), None) => write!(f, "{PATH} line {line}: {}", self.message),
            _ => write!(f, "{PATH}: {}", self.message),
        }
    }
}

/// A path inside the repository: relative, no `..`, no absolute paths.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RelativePath(String);

impl RelativePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RelativePath {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        let trimmed = raw.trim().trim_start_matches("./");
        let trimmed = if trimmed.is_empty() { "." } else { trimmed };
        if trimmed.starts_with('/')
            || trimmed.contains('\\')
            || trimmed.split('/').any(|s| s == "..")
            || trimmed.chars().any(char::is_control)
        {
            return Err(format!(
                "{raw:?} must be a relative path inside the repository"
            ));
        }
        Ok(Self(trimmed.trim_end_matches('/').to_owned()))
    }
}

// The file as written. Each field type validates itself, so errors carry their position.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    build: Option<RawBuild>,
    image: Option<ImageTemplate>,
    chart: Option<RelativePath>,
    port: Option<Port>,
    health: Option<HealthPath>,
    #[serde(default)]
    env: BTreeMap<EnvName, String>,
    resources: Option<RawResources>,
    ttl: Option<Ttl>,
    #[serde(default)]
    paths: Vec<Glob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    dockerfile: Option<RelativePath>,
    context: Option<RelativePath>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpu: Option<CpuQuantity>,
    memory: Option<MemoryQuantity>,
}

macro_rules! validated {
    ($name:ident, $inner:ty, $check:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        struct $name($inner);
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<$inner, String> = $check;
                check(&raw).map($name)
            }
        }
    };
}

validated!(Port, u16, |raw| match raw.trim().parse::<u16>() {
    Ok(p) if p > 0 => Ok(p),
    _ => Err(format!("port {raw:?} must be a number from 1 to 65535")),
});
validated!(HealthPath, String, |raw| {
    if raw.starts_with('/')
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
        && raw.len() <= 1024
    {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "health {raw:?} must be an absolute URL path such as /healthz"
        ))
    }
});
validated!(EnvName, String, |raw| {
    let valid = !raw.is_empty()
        && raw.len() <= 128
        && !raw.starts_with(|c: char| c.is_ascii_digit())
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        Err(format!(
            "env name {raw:?} must be letters, digits and _ and not start with a digit"
        ))
    } else if raw.starts_with("PREVIEWD_") {
        Err(format!(
            "env name {raw:?}: PREVIEWD_ variables are set by previewd"
        ))
    } else {
        Ok(raw.to_owned())
    }
});
validated!(ImageTemplate, String, |raw| {
    let raw = raw.trim();
    let valid = !raw.is_empty()
        && raw.len() <= 512
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./:-_@{}".contains(c))
        && raw
            .replace("{sha}", "")
            .chars()
            .all(|c| c != '{' && c != '}');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "image {raw:?} must be an image reference, e.g. ghcr.io/acme/web:{{sha}}"
        ))
    }
});
validated!(Ttl, Duration, |raw| crate::units::parse_duration(raw)
    .map_err(|e| format!("ttl {e}")));
validated!(Glob, String, |raw| {
    if raw.trim().is_empty() || raw.starts_with('/') {
        Err(format!(
            "paths entry {raw:?} must be a relative glob such as web/**"
        ))
    } else {
        Ok(raw.trim().to_owned())
    }
});

#[derive(Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
struct CpuQuantity(Quantity);
impl TryFrom<serde_yaml::Value> for CpuQuantity {
    type Error = String;
    fn try_from(v: serde_yaml::Value) -> Result<Self, String> {
        Quantity::cpu(&scalar_text(&v)).map(Self)
    }
}

#[derive(Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
struct MemoryQuantity(Quantity);
impl TryFrom<serde_yaml::Value> for MemoryQuantity {
    type Error = String;
    fn try_from(v: serde_yaml::Value) -> Result<Self, String> {
        Quantity::memory(&scalar_text(&v)).map(Self)
    }
}

/// A YAML scalar as text (`cpu: 1` is a number to YAML, a quantity to us).
fn scalar_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Longest accepted file.
const MAX_FILE: usize = 64 * 1024;

/// Reads and validates `.github/preview.yml`.
pub fn parse(text: &str, limits: &Limits) -> Result<RepoConfig, ConfigError> {
    if text.len() > MAX_FILE {
        return Err(ConfigError {
            line: None,
            column: None,
            message: format!("is larger than {} KiB", MAX_FILE / 1024),
        });
    }
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(RepoConfig::defaults(limits));
    }
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
        let location = e.location();
        // serde_yaml appends " at line X column Y" itself; keep the message without it.
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        let mut line = location.as_ref().map(|l| l.line());
        let mut column = location.as_ref().map(|l| l.column());
        // Values YAML reads as numbers lose their position on the way into our checks; the
        // message starts with the key, so point at the key's line instead of the document start.
        if line.is_none_or(|l| l == 1)
            && column.is_none_or(|c| c == 1)
            && let Some(found) = key_line(text, &message)
        {
            (line, column) = (Some(found), None);
        }
        ConfigError {
            line,
            column,
            message,
        }
    })?;
    let whole = |message: String| ConfigError {
        line: None,
        column: None,
        message,
    };

    let source = match (raw.build, raw.image) {
        (Some(_), Some(_)) => return Err(whole("give either build or image, not both".into())),
        (None, Some(image)) => {
            if !limits.image_allowed(&image.0) {
                return Err(whole(format!(
                    "image {} is not from a registry this install allows ({})",
                    image.0,
                    limits.image_registries.join(", ")
                )));
            }
            ImageSource::Image(image.0)
        }
        (build, None) => {
            let build = build.unwrap_or(RawBuild {
                dockerfile: None,
                context: None,
            });
            ImageSource::Build {
                dockerfile: build
                    .dockerfile
                    .unwrap_or_else(|| RelativePath("Dockerfile".into())),
                context: build.context.unwrap_or_else(|| RelativePath(".".into())),
            }
        }
    };
    let resources = raw.resources.unwrap_or(RawResources {
        cpu: None,
        memory: None,
    });
    let cpu = resources
        .cpu
        .map_or_else(|| limits.default_cpu.clone(), |c| c.0);
    let memory = resources
        .memory
        .map_or_else(|| limits.default_memory.clone(), |m| m.0);
    if cpu.value > limits.max_cpu.value {
        return Err(whole(format!(
            "resources.cpu {} is above this install's maximum of {}",
            cpu.text, limits.max_cpu.text
        )));
    }
    if memory.value > limits.max_memory.value {
        return Err(whole(format!(
            "resources.memory {} is above this install's maximum of {}",
            memory.text, limits.max_memory.text
        )));
    }
    if let Some(ttl) = raw.ttl.as_ref().map(|t| t.0)
        && ttl > limits.max_ttl
    {
        return Err(whole(format!(
            "ttl {}h is above this install's maximum of {}h",
            ttl.as_secs() / 3600,
            limits.max_ttl.as_secs() / 3600
        )));
    }
    Ok(RepoConfig {
        source,
        chart: raw.chart,
        port: raw.port.map_or(8080, |p| p.0),
        health: raw.health.map_or_else(|| "/".into(), |h| h.0),
        env: raw.env.into_iter().map(|(k, v)| (k.0, v)).collect(),
        cpu,
        memory,
        ttl: raw.ttl.map(|t| t.0),
        paths: raw.paths.into_iter().map(|g| g.0).collect(),
    })
}

/// The line of the first `key:` where `key` is the first word of `message`.
fn key_line(text: &str, message: &str) -> Option<usize> {
    let key = message.split_whitespace().next()?;
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    let key = key.rsplit('.').next()?;
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// True when `path` matches the glob (`*` within a segment, `**` across segments).
pub fn glob_matches(glob: &str, path: &str) -> bool {
    fn go(g: &[&str], p: &[&str]) -> bool {
        match (g.first(), p.first()) {
            (None, None) => true,
            (Some(&"**"), _) => go(&g[1..], p) || (!p.is_empty() && go(g, &p[1..])),
            (Some(seg), Some(part)) => segment_matches(seg, part) && go(&g[1..], &p[1..]),
            _ => false,
        }
    }
    fn segment_matches(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((prefix, rest)) => {
                let Some(tail) = text.strip_prefix(prefix) else {
                    return false;
                };
                (0..=tail.len())
                    .filter(|i| tail.is_char_boundary(*i))
                    .any(|i| segment_matches(rest, &tail[i..]))
            }
        }
    }
    let g: Vec<&str> = glob.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    go(&g, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> RepoConfig {
        parse(text, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, &Limits::default()).expect_err("should be rejected")
    }

    #[test]
    fn the_design_example_parses() {
        let c = parse_ok(
            "build: { dockerfile: Dockerfile, context: . }\nchart: deploy/chart\nport: 8080\nhealth: /healthz\n\
             env: { FEATURE_X: \"1\" }\nresources: { cpu: 500m, memory: 512Mi }\nttl: 72h\npaths: [ \"web/**\" ]\n",
        );
        assert_eq!(
            c.chart.as_ref().map(RelativePath::as_str),
            Some("deploy/chart")
        );
        assert_eq!(c.port, 8080);
        assert_eq!(c.health, "/healthz");
        assert_eq!(c.env.get("FEATURE_X").map(String::as_str), Some("1"));
        assert_eq!(c.cpu.value, 500);
        assert_eq!(c.memory.value, 512 << 20);
        assert_eq!(c.ttl, Some(Duration::from_secs(72 * 3600)));
        assert_eq!(c.paths, vec!["web/**".to_owned()]);
    }

    #[test]
    fn missing_or_empty_file_means_defaults() {
        let d = RepoConfig::defaults(&Limits::default());
        assert_eq!(parse_ok(""), d);
        assert_eq!(parse_ok("# nothing yet\n"), d);
        assert!(
            matches!(d.source, ImageSource::Build { ref dockerfile, .. } if dockerfile.as_str() == "Dockerfile")
        );
    }

    #[test]
    fn ready_made_images_take_the_sha() {
        let c = parse_ok("image: ghcr.io/acme/web:{sha}\n");
        assert_eq!(
            c.source.ready_image("abc123").as_deref(),
            Some("ghcr.io/acme/web:abc123")
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_line() {
        let e = parse_err("port: 8080\nhealth: /\nreplicas: 3\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("unknown field `replicas`"), "{e}");
        assert!(
            e.to_string().starts_with(".github/preview.yml line 3"),
            "{e}"
        );
        let e = parse_err("build:\n  dockerfile: Dockerfile\n  target: prod\n");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        for (text, line, needle) in [
            ("port: 0\n", 1, "port"),
            ("env:\n  A: b\nport: 99999\n", 3, "port"),
            ("health: healthz\n", 1, "health"),
            ("env:\n  1BAD: x\n", 2, "env name"),
            ("env:\n  PREVIEWD_URL: x\n", 2, "PREVIEWD_"),
            ("chart: ../../etc\n", 1, "relative path"),
            ("build:\n  context: /abs\n", 2, "relative path"),
            ("ttl: forever\n", 1, "ttl"),
            ("resources:\n  cpu: lots\n", 2, "cpu"),
            ("resources:\n  memory: 1TB\n", 2, "memory"),
            ("image: \"a b\"\n", 1, "image"),
            ("port: [1\n", 1, ""),
        ] {
            let e = parse_err(text);
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn whole_file_rules() {
        assert!(
            parse_err("build: {}\nimage: x:1\n")
                .message
                .contains("not both")
        );
        assert!(
            parse_err("resources: { cpu: \"4\" }\n")
                .message
                .contains("maximum")
        );
        assert!(
            parse_err("resources: { memory: 8Gi }\n")
                .message
                .contains("maximum")
        );
        assert!(
            parse_err("- a\n- b\n").line.is_some(),
            "a list is not a config"
        );
        assert!(parse_err(&"#".repeat(70_000)).message.contains("larger"));
    }

    #[test]
    fn quantities() {
        assert_eq!(Quantity::cpu("1").map(|q| q.value), Ok(1000));
        assert_eq!(Quantity::cpu("0.25").map(|q| q.value), Ok(250));
        assert_eq!(Quantity::memory("1Gi").map(|q| q.value), Ok(1 << 30));
        assert_eq!(Quantity::memory("500M").map(|q| q.value), Ok(500_000_000));
        assert!(
            Quantity::cpu("0").is_err()
                && Quantity::memory("0").is_err()
                && Quantity::memory("-1Mi").is_err()
        );
    }

    #[test]
    fn globs() {
        assert!(glob_matches("web/**", "web/src/app.ts"));
        assert!(glob_matches("web/**", "web"));
        assert!(!glob_matches("web/**", "api/main.go"));
        assert!(glob_matches("*.md", "README.md"));
        assert!(!glob_matches("*.md", "docs/README.md"));
        assert!(glob_matches("**/*.md", "docs/README.md"));
        assert!(glob_matches("src/*/mod.rs", "src/a/mod.rs"));
    }
}
