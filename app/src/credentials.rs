//! The GitHub App's registered credentials, as the "Register GitHub App" page stores them.
//!
//! GitHub's manifest flow hands previewd an App id, a private key, a webhook secret and OAuth
//! client credentials exactly once. [`AppCredentials`] holds them (secrets as [`SecretString`],
//! redacted in `Debug`) and this module owns their file format: one JSON object, written with
//! mode 0600 and never over an existing file ([`write_new`]), and read back ([`read`]) refusing a
//! file that other users may read. Both binaries read the file when the App is not configured
//! through `GITHUB_APP_ID` and friends (`config.rs` decides); in the Helm chart the same JSON is
//! the one key of a Kubernetes Secret mounted as that file. A leaf module: it knows files and
//! JSON, nothing of the rest of previewd.

use std::{fmt, io::Write as _, path::Path};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Name of the file, and of the key in the chart's Secret, holding the credentials.
pub const FILE_NAME: &str = "github-app.json";

/// What GitHub returned when the App was registered from the manifest.
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: u64,
    /// The App's URL name, e.g. `previewd-acme`.
    pub slug: String,
    /// The App's page on GitHub; `{html_url}/installations/new` installs it.
    pub html_url: String,
    /// The account that owns the App registration.
    pub owner: String,
    /// The App's RSA private key (PEM).
    pub private_key: SecretString,
    pub webhook_secret: SecretString,
    /// OAuth client credentials of the App (kept for signing people in; unused so far).
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("slug", &self.slug)
            .field("html_url", &self.html_url)
            .field("owner", &self.owner)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The JSON shape on disk; field names are this file format's, not GitHub's.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    app_id: u64,
    slug: String,
    html_url: String,
    owner: String,
    private_key: String,
    webhook_secret: String,
    client_id: String,
    client_secret: String,
}

/// Why the credentials could not be read or written. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path} is readable by other users (mode {mode:o}): make it private with chmod 600")]
    TooOpen { path: String, mode: u32 },
    #[error("{path} is not a credentials file: {message}")]
    Invalid { path: String, message: String },
    #[error("{path} already exists: the App is registered already")]
    Exists { path: String },
}

impl AppCredentials {
    /// The JSON text of the credentials (secrets included: for the file and the Secret only).
    pub fn to_json(&self) -> SecretString {
        let on_disk = OnDisk {
            app_id: self.app_id,
            slug: self.slug.clone(),
            html_url: self.html_url.clone(),
            owner: self.owner.clone(),
            private_key: self.private_key.expose_secret().to_owned(),
            webhook_secret: self.webhook_secret.expose_secret().to_owned(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.expose_secret().to_owned(),
        };
        SecretString::from(serde_json::to_string_pretty(&on_disk).unwrap_or_default())
    }

    /// Parses [`Self::to_json`]'s text; the error names what is wrong, never a value.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let d: OnDisk = serde_json::from_str(text).map_err(|e| {
            // serde's message can quote input; keep only where it failed.
            format!(
                "not the expected JSON object (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if d.app_id == 0 {
            return Err("app_id must be a positive integer".to_owned());
        }
        if d.webhook_secret.is_empty() || d.private_key.is_empty() {
            return Err("private_key and webhook_secret must not be empty".to_owned());
        }
        Ok(Self {
            app_id: d.app_id,
            slug: d.slug,
            html_url: d.html_url,
            owner: d.owner,
            private_key: SecretString::from(d.private_key),
            webhook_secret: SecretString::from(d.webhook_secret),
            client_id: d.client_id,
            client_secret: SecretString::from(d.client_secret),
        })
    }

    /// `{html_url}/installations/new`: where the admin installs the App.
    pub fn install_url(&self) -> String {
        format!("{}/installations/new", self.html_url.trim_end_matches('/'))
    }
}

/// Whether a credentials file exists at `path` (an unreadable directory counts as an error).
pub fn exists(path: &Path) -> Result<bool, CredentialsError> {
    path.try_exists().map_err(|e| io_error(path, &e))
}

/// Reads the credentials at `path`. A file that users other than its owner and group may read
/// is refused, as ssh refuses such a key (a Kubernetes Secret mounted with `defaultMode: 0440`
/// and an `fsGroup` passes).
pub fn read(path: &Path) -> Result<AppCredentials, CredentialsError> {
    let metadata = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(CredentialsError::TooOpen {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
    AppCredentials::from_json(&text).map_err(|message| CredentialsError::Invalid {
        path: path.display().to_string(),
        message,
    })
}

/// Writes `credentials` to a new file at `path` with mode 0600. Fails with
/// [`CredentialsError::Exists`] when the file is already there: a registration never replaces
/// another.
pub fn write_new(path: &Path, credentials: &AppCredentials) -> Result<(), CredentialsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CredentialsError::Exists {
                path: path.display().to_string(),
            }
        } else {
            io_error(path, &e)
        }
    })?;
    let written = file
        .write_all(credentials.to_json().expose_secret().as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        // A half-written file would block the next registration and hold a broken key.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_error(path, &e));
    }
    Ok(())
}

/// Checks that [`write_new`] could create `path`: no file there yet and its directory exists and
/// is writable. Done before sending the admin to GitHub, so a registration is never lost for
/// want of a place to keep it.
pub fn check_writable(path: &Path) -> Result<(), CredentialsError> {
    if exists(path)? {
        return Err(CredentialsError::Exists {
            path: path.display().to_string(),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let probe = dir.join(format!(".{FILE_NAME}.probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| io_error(&dir, &e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn io_error(path: &Path, e: &std::io::Error) -> CredentialsError {
    CredentialsError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AppCredentials {
        AppCredentials {
            app_id: 77,
            slug: "previewd-acme".into(),
            html_url: "https://github.com/apps/previewd-acme".into(),
            owner: "acme".into(),
            private_key: SecretString::from("-----BEGIN RSA PRIVATE KEY-----\nkey-material\n"),
            webhook_secret: SecretString::from("hook-secret-1"),
            client_id: "Iv1.abc".into(),
            client_secret: SecretString::from("client-secret-1"),
        }
    }

    fn temp_path() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "previewd-credentials-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join(FILE_NAME)
    }

    #[test]
    fn round_trip_through_a_private_file() {
        let path = temp_path();
        check_writable(&path).expect("writable");
        write_new(&path, &sample()).expect("written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let back = read(&path).expect("read back");
        assert_eq!(back.app_id, 77);
        assert_eq!(back.webhook_secret.expose_secret(), "hook-secret-1");
        assert_eq!(
            back.install_url(),
            "https://github.com/apps/previewd-acme/installations/new"
        );
        let again = write_new(&path, &sample()).expect_err("never overwritten");
        assert!(matches!(again, CredentialsError::Exists { .. }), "{again}");
        assert!(matches!(
            check_writable(&path),
            Err(CredentialsError::Exists { .. })
        ));
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = temp_path();
        write_new(&path, &sample()).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = read(&path).expect_err("too open");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).expect("chmod");
        read(&path).expect("owner and group only is fine");
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let debug = format!("{:?}", sample());
        for secret in ["key-material", "hook-secret-1", "client-secret-1"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let broken = r#"{"app_id": 1, "private_key": "key-material-2", "webhook_secret": 5}"#;
        let err = AppCredentials::from_json(broken).expect_err("invalid");
        assert!(!err.contains("key-material-2"), "{err}");
        assert!(
            AppCredentials::from_json(&sample().to_json().expose_secret().replace("77", "0"))
                .is_err()
        );
    }
}
