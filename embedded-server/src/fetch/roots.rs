//! The roots upstream TLS trusts: the platform's CA store (Android's hashed PEM directory, minus
//! the certificates the user disabled in Settings) or, off Android, Mozilla's roots built into the
//! library; plus the app's own `ca_cert_pem`.
//!
//! Android keeps its system CAs as one file per certificate, named `<subject hash>.<n>`, each a PEM
//! block followed by a text dump of the certificate: `/apex/com.android.conscrypt/cacerts` since
//! Android 14 (updated with Conscrypt), `/system/etc/security/cacerts` before. A CA the user turned
//! off has a file of the same name in `/data/misc/user/<user id>/cacerts-removed`. Reading them is
//! what the platform's own `TrustedCertificateStore` does, so a backend the phone's browser trusts is
//! trusted here too, without a Java component or a `Context`.

use std::collections::HashSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;

use crate::config::TrustRoots;
use crate::error::Error;

impl TrustRoots {
    /// The phone's system CA store: the first of Android's CA directories that exists, minus the
    /// CAs the current user disabled.
    pub fn android_system() -> Self {
        Self::Directories {
            dirs: vec![
                PathBuf::from("/apex/com.android.conscrypt/cacerts"),
                PathBuf::from("/system/etc/security/cacerts"),
            ],
            disabled: android_user_id().map(|user| PathBuf::from(format!("/data/misc/user/{user}/cacerts-removed"))),
        }
    }
}

impl Default for TrustRoots {
    /// Android: the phone's system store. Elsewhere: the bundled Mozilla roots.
    fn default() -> Self {
        #[cfg(target_os = "android")]
        return Self::android_system();
        #[cfg(not(target_os = "android"))]
        return Self::Bundled;
    }
}

/// The Android user this process runs as (`uid / 100000`), from the owner of `/proc/self`.
fn android_user_id() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid() / 100_000)
}

/// Builds the root store from `trust` and the optional extra PEM file.
pub(super) fn root_store(trust: &TrustRoots, extra_pem: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    match trust {
        #[cfg(not(target_os = "android"))]
        TrustRoots::Bundled => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TrustRoots::Directories { dirs, disabled } => {
            let dir = dirs
                .iter()
                .find(|d| d.is_dir())
                .ok_or_else(|| Error::config(format!("no CA directory found (looked for {})", list(dirs))))?;
            add_directory(&mut roots, dir, disabled.as_deref())?;
        }
    }
    if let Some(path) = extra_pem {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::config_caused(format_args!("cannot read CA file {}", path.display()), e))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
            let cert = cert.map_err(|e| Error::config_caused(format_args!("bad PEM in {}", path.display()), e))?;
            roots
                .add(cert)
                .map_err(|e| Error::config_caused(format_args!("bad CA certificate in {}", path.display()), e))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::config(format!("no certificate found in {}", path.display())));
        }
    }
    Ok(roots)
}

/// Adds every certificate of a hashed CA directory whose file name is not in `disabled`. A file
/// that cannot be read or parsed is skipped (the platform skips it too); a directory that yields
/// no certificate at all is an error, since nothing could then be fetched over TLS.
fn add_directory(roots: &mut RootCertStore, dir: &Path, disabled: Option<&Path>) -> Result<(), Error> {
    let disabled: HashSet<_> = disabled
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::config_caused(format_args!("cannot read CA directory {}", dir.display()), e))?;
    let (mut added, mut skipped) = (0usize, 0usize);
    for entry in entries.flatten() {
        if disabled.contains(&entry.file_name()) {
            continue;
        }
        let Ok(file) = std::fs::File::open(entry.path()) else {
            skipped += 1;
            continue;
        };
        let mut reader = BufReader::new(file);
        let (ok, bad) = roots.add_parsable_certificates(rustls_pemfile::certs(&mut reader).filter_map(Result::ok));
        added += ok;
        skipped += bad;
    }
    if added == 0 {
        return Err(Error::config(format!("no CA certificate found in {}", dir.display())));
    }
    tracing::debug!(dir = %dir.display(), added, skipped, disabled = disabled.len(), "trusted CA directory loaded");
    Ok(())
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
