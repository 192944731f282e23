//! TLS for PostgreSQL connections, with libpq's settings and meanings (contract §5).
//!
//! `sslmode` is `disable`, `prefer` (the default), `require`, `verify-ca` or `verify-full`;
//! `sslrootcert` names the certificate authorities to trust (default `~/.postgresql/root.crt`,
//! or `system` for the operating system's store), `sslcert`/`sslkey` a client certificate
//! (default `~/.postgresql/postgresql.crt` and `.key`, used when present). As in libpq:
//!
//! - `prefer` and `require` encrypt without checking the server's certificate, unless a root
//!   certificate file exists; then they check it as `verify-ca` does;
//! - `verify-ca` checks that the certificate is signed by a trusted authority, `verify-full`
//!   also that it names the host connected to;
//! - `sslrootcert=system` needs `verify-full` (and is `verify-full` when no mode is given);
//! - a Unix socket is never encrypted, whatever the mode.
//!
//! The postgres crate knows only `disable`, `prefer` and `require` and none of the file
//! settings, so [`split_tls_params`] takes them out of the connection string first.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// How much TLS a connection demands, as libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it (the default).
    Prefer,
    /// Encrypt or fail; the certificate is checked only when a root certificate is present.
    Require,
    /// Encrypt, and check the certificate against the trusted authorities.
    VerifyCa,
    /// Encrypt, check the certificate, and check that it names the host.
    VerifyFull,
}

impl SslMode {
    /// Every mode's name, weakest first.
    pub const NAMES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

    /// The mode's name, as written in a connection string.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "`{}` is not an sslmode (one of {})",
                    other.escape_default(),
                    Self::NAMES.join(", ")
                ));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The TLS settings of a connection string; `None` where it says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `sslmode`.
    pub sslmode: Option<SslMode>,
    /// `sslrootcert`: a PEM file of trusted authorities, or `system`.
    pub sslrootcert: Option<String>,
    /// `sslcert`: the client's certificate chain, PEM.
    pub sslcert: Option<String>,
    /// `sslkey`: the client's private key, PEM.
    pub sslkey: Option<String>,
}

impl TlsParams {
    /// Fills what is unset from libpq's variables: `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
    /// `PGSSLKEY`.
    pub fn or_environment(mut self) -> Result<TlsParams> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if self.sslmode.is_none()
            && let Some(mode) = var("PGSSLMODE")
        {
            self.sslmode = Some(
                mode.parse()
                    .map_err(|e| Error::Usage(format!("PGSSLMODE: {e}")))?,
            );
        }
        self.sslrootcert = self.sslrootcert.or_else(|| var("PGSSLROOTCERT"));
        self.sslcert = self.sslcert.or_else(|| var("PGSSLCERT"));
        self.sslkey = self.sslkey.or_else(|| var("PGSSLKEY"));
        Ok(self)
    }

    fn set(&mut self, key: &str, value: String) -> Result<bool> {
        match key {
            "sslmode" => {
                self.sslmode = Some(value.parse().map_err(Error::Usage)?);
            }
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" => self.sslcert = Some(value),
            "sslkey" => self.sslkey = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Takes the TLS settings out of a connection string (`postgresql://…?sslmode=…` or
/// `key=value …`), returning the rest of it for the postgres crate and the settings.
pub fn split_tls_params(conninfo: &str) -> Result<(String, TlsParams)> {
    let mut params = TlsParams::default();
    let is_url = ["postgresql://", "postgres://"]
        .iter()
        .any(|p| conninfo.starts_with(p));
    if is_url {
        let Some((base, query)) = conninfo.split_once('?') else {
            return Ok((conninfo.to_string(), params));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            if !params.set(&decode(key), decode(value))? {
                kept.push(pair);
            }
        }
        let rest = match kept.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", kept.join("&")),
        };
        return Ok((rest, params));
    }
    let mut kept = Vec::new();
    for (key, value) in key_values(conninfo)? {
        if !params.set(&key, value.clone())? {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), params))
}

/// The `key = value` pairs of a libpq keyword/value string: values bare or in single quotes,
/// a backslash escaping the next character.
fn key_values(s: &str) -> Result<Vec<(String, String)>> {
    let bad = |what: &str| {
        Error::Usage(format!(
            "--db-url / DATABASE_URL is not a valid connection string: {what}"
        ))
    };
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            return match chars.peek() {
                None => Ok(pairs),
                Some(_) => Err(bad("a parameter without a name")),
            };
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(&format!("`{key}` has no `=`")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\'') if quoted => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\\') => value.extend(chars.next()),
                Some(c) => value.push(c),
                None if quoted => {
                    return Err(bad(&format!("the value of `{key}` is unterminated")));
                }
                None => break,
            }
        }
        pairs.push((key, value));
    }
}

/// The certificate authorities a connection trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    /// None: the server's certificate is not checked.
    None,
    /// The operating system's store.
    System,
    /// A PEM file.
    File(PathBuf),
}

/// Resolved TLS settings: the mode in force and the connector that carries it out.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    roots: Roots,
    connector: MakeRustlsConnect,
}

impl Tls {
    /// Resolves `params` (already filled from the environment) as libpq does, reading the
    /// certificate files now, so that a missing or unreadable one is an error before any work.
    pub fn new(params: &TlsParams) -> Result<Tls> {
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        let default = |name: &str| home.as_ref().map(|h| h.join(name));
        let explicit = params.sslmode;
        let roots = match params.sslrootcert.as_deref() {
            Some("system") => Roots::System,
            Some(path) => Roots::File(existing(path, "sslrootcert")?),
            None => match default("root.crt") {
                Some(path) if path.is_file() => Roots::File(path),
                _ => Roots::None,
            },
        };
        let mode = match (explicit, &roots) {
            (None, Roots::System) => SslMode::VerifyFull,
            (Some(mode), Roots::System)
                if mode < SslMode::VerifyFull && mode > SslMode::Disable =>
            {
                return Err(Error::Usage(format!(
                    "sslmode={mode} may not be used with sslrootcert=system (use verify-full)"
                )));
            }
            (Some(mode), _) => mode,
            (None, _) => SslMode::Prefer,
        };
        if mode >= SslMode::VerifyCa && roots == Roots::None {
            let looked = default("root.crt")
                .map_or("~/.postgresql/root.crt".into(), |p| p.display().to_string());
            return Err(Error::Usage(format!(
                "sslmode={mode} needs the certificate authorities to trust, and {looked} does \
                 not exist: give sslrootcert=FILE (or PGSSLROOTCERT), or sslrootcert=system"
            )));
        }
        let client = match (params.sslcert.as_deref(), params.sslkey.as_deref()) {
            (Some(cert), key) => {
                let cert = existing(cert, "sslcert")?;
                let key = match key {
                    Some(key) => existing(key, "sslkey")?,
                    None => default("postgresql.key").unwrap_or_default(),
                };
                Some((cert, key))
            }
            (None, key) => match default("postgresql.crt") {
                Some(cert) if cert.is_file() => {
                    let key = match key {
                        Some(key) => existing(key, "sslkey")?,
                        None => default("postgresql.key").unwrap_or_default(),
                    };
                    Some((cert, key))
                }
                _ => None,
            },
        };
        let connector = match mode {
            SslMode::Disable => client_config(Arc::new(NoVerification(provider())), None)?,
            _ => {
                let verifier = verifier(mode, &roots)?;
                client_config(verifier, client.as_ref())?
            }
        };
        Ok(Tls {
            mode,
            roots,
            connector: MakeRustlsConnect::new(connector),
        })
    }

    /// The mode in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The mode as the postgres crate knows it.
    pub fn postgres_mode(&self) -> postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }

    /// The connector to hand to `postgres::Config::connect`.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// What is checked of the server's certificate, for the summary: `verify-full`,
    /// `verify-ca` or `not verified`.
    pub fn checks(&self) -> &'static str {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => "verify-full",
            (SslMode::Disable, _) | (_, Roots::None) => "certificate not verified",
            _ => "verify-ca",
        }
    }

    /// A hint for a failed connection: what the certificate check found, in words, or that
    /// the server wants TLS where `disable` forbids it.
    pub fn hint(&self, error: &postgres::Error) -> Option<String> {
        if self.mode == SslMode::Disable
            && error
                .as_db_error()
                .is_some_and(|e| e.message().contains("no encryption"))
        {
            return Some(
                "the server takes only TLS sessions here; sslmode=disable forbids them".into(),
            );
        }
        let error: &(dyn std::error::Error + 'static) = error;
        let mut source = Some(error);
        while let Some(e) = source {
            // An io::Error's source() skips the error it wraps: look inside it too.
            let inner = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if let Some(rustls::Error::InvalidCertificate(cert)) =
                inner.or_else(|| e.downcast_ref::<rustls::Error>())
            {
                let trusted = match &self.roots {
                    Roots::File(path) => format!("an authority in {}", path.display()),
                    _ => "an authority of the system's".into(),
                };
                let checked = match self.mode {
                    SslMode::Prefer | SslMode::Require => format!(
                        "sslmode={} checks it because a root certificate is given, as libpq does",
                        self.mode
                    ),
                    mode => format!("sslmode={mode}"),
                };
                return Some(match cert {
                    CertificateError::UnknownIssuer => {
                        format!("the server's certificate is not signed by {trusted}; {checked}")
                    }
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. } => {
                        "the server's certificate does not name the host connected to; \
                         verify-full checks the name, verify-ca does not"
                            .into()
                    }
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        "the server's certificate has expired".into()
                    }
                    _ => return None,
                });
            }
            source = e.source();
        }
        None
    }
}

/// `path`, which must exist, as a path.
fn existing(path: &str, setting: &str) -> Result<PathBuf> {
    let path = expand_home(path);
    match path.is_file() {
        true => Ok(path),
        false => Err(Error::Usage(format!(
            "{setting}: {} does not exist or is not a file",
            path.display()
        ))),
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate check `mode` makes with `roots`.
fn verifier(mode: SslMode, roots: &Roots) -> Result<Arc<dyn ServerCertVerifier>> {
    let provider = provider();
    let store = match roots {
        Roots::None => return Ok(Arc::new(NoVerification(provider))),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(Error::Usage(
                    "sslrootcert=system: no certificate authorities found in the system's store"
                        .into(),
                ));
            }
            store
        }
        Roots::File(path) => {
            let shown = path.display();
            let mut store = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::Usage(format!("sslrootcert {shown}: {e}")))?;
            let (_, ignored) = store.add_parsable_certificates(certs);
            if store.is_empty() {
                return Err(Error::Usage(format!(
                    "sslrootcert {shown}: no usable certificate in it ({ignored} unreadable)"
                )));
            }
            store
        }
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .map_err(|e| Error::Usage(format!("the root certificates: {e}")))?;
    Ok(match mode {
        SslMode::VerifyFull => webpki,
        _ => Arc::new(AuthorityOnly(webpki)),
    })
}

/// A rustls client configuration with `verifier`, presenting the client certificate `client`
/// (chain file, key file) when there is one.
fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let Some((cert, key)) = client else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Usage(format!("sslcert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(Error::Usage(format!(
            "sslcert {}: no certificate in it",
            cert.display()
        )));
    }
    private_key_is_private(key)?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Usage(format!("sslkey {}: {e}", key.display())))?;
    builder
        .with_client_auth_cert(chain, private)
        .map_err(|e| Error::Usage(format!("sslcert/sslkey: {e}")))
}

/// libpq refuses a private key that others may read; so do we.
fn private_key_is_private(key: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(key).map_err(|e| {
        Error::Usage(format!(
            "sslkey {}: {e} (a client certificate needs its key)",
            key.display()
        ))
    })?;
    let mode = meta.permissions().mode();
    // As libpq: 0600 or less; 0640 or less when root owns it (a key shared with a group).
    let allowed = if meta.uid() == 0 { 0o037 } else { 0o077 };
    if mode & allowed != 0 {
        return Err(Error::Usage(format!(
            "sslkey {}: others may read it (mode {:o}); chmod 0600 it",
            key.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// `prefer`/`require` without root certificates: the handshake's signatures are checked (the
/// session is really encrypted with the key of the certificate shown), the certificate not.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl NoVerification {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

/// `verify-ca`: the certificate's chain is checked as `verify-full` checks it, and only a name
/// that does not match is let through. (webpki checks the chain before the name, so a name
/// error means the chain passed.)
#[derive(Debug)]
struct AuthorityOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AuthorityOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_order_by_strength() {
        for name in SslMode::NAMES {
            assert_eq!(name.parse::<SslMode>().unwrap().name(), name);
        }
        assert!(SslMode::Prefer < SslMode::Require && SslMode::VerifyCa < SslMode::VerifyFull);
        let e = "verify".parse::<SslMode>().unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
    }

    #[test]
    fn tls_settings_leave_a_url_and_the_rest_stays() {
        let (rest, p) = split_tls_params(
            "postgresql://u:pw@h:5433/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:pw@h:5433/db?application_name=x");
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/ca.pem"));

        let (rest, p) = split_tls_params("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), p.sslmode),
            ("postgresql://h/db", Some(SslMode::Require))
        );
        let (rest, p) = split_tls_params("postgresql://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), p),
            ("postgresql://h/db", TlsParams::default())
        );
        assert!(split_tls_params("postgresql://h/db?sslmode=strict").is_err());
    }

    #[test]
    fn tls_settings_leave_a_keyword_string_and_quoting_survives() {
        let (rest, p) = split_tls_params(
            r"host=h  dbname = 'my db' sslmode=verify-ca password='a\'b\\c' sslcert=/c.pem",
        )
        .unwrap();
        assert_eq!(rest, r"host='h' dbname='my db' password='a\'b\\c'");
        assert_eq!(p.sslmode, Some(SslMode::VerifyCa));
        assert_eq!(p.sslcert.as_deref(), Some("/c.pem"));
        let config: postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a'b\\c"[..]));
        assert_eq!(config.get_dbname(), Some("my db"));
        assert!(split_tls_params("host='h").is_err());
        assert!(split_tls_params("host").is_err());
    }

    #[test]
    fn verification_needs_roots_and_system_roots_need_verify_full() {
        let params = |mode: &str, root: Option<&str>| TlsParams {
            sslmode: Some(mode.parse().unwrap()),
            sslrootcert: root.map(String::from),
            ..TlsParams::default()
        };
        let e = Tls::new(&params("verify-ca", Some("/nonexistent/ca.pem")))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = Tls::new(&params("require", Some("system"))).err().unwrap();
        assert!(e.to_string().contains("verify-full"), "{e}");
    }
}
