//! The allow-list of backends: the server is never an open proxy.
//!
//! An origin is `scheme://host[:port]` with the scheme's default port filled in, compared exactly
//! (hosts case-insensitively). Redirects are checked against the same list.

use url::Url;

use crate::error::Error;

/// One allowed backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is accepted; a path is not).
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let url = Url::parse(text).map_err(|e| Error::config_caused(format_args!("bad origin {text:?}"), e))?;
        if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
            return Err(Error::config(format!(
                "bad origin {text:?}: give only scheme://host[:port], without a path, query or user"
            )));
        }
        Self::of(&url).ok_or_else(|| Error::config(format!("bad origin {text:?}: only http and https are supported")))
    }

    /// The origin of a URL, if it is http(s) with a host.
    pub(crate) fn of(url: &Url) -> Option<Self> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

/// The set of allowed origins.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginList {
    origins: Vec<Origin>,
}

impl OriginList {
    /// Parses every entry; the first bad one is the error.
    pub(crate) fn parse(list: &[String]) -> Result<Self, Error> {
        Ok(Self {
            origins: list.iter().map(|o| Origin::parse(o)).collect::<Result<_, _>>()?,
        })
    }

    /// Whether `url` may be fetched.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        Origin::of(url).is_some_and(|o| self.origins.contains(&o))
    }

    /// Parses `url` and checks it against the list.
    pub(crate) fn check(&self, url: &str) -> Result<Url, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::invalid_caused(format_args!("bad URL {url:?}"), e))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid(format!(
                "bad URL {url:?}: only http and https are supported"
            )));
        }
        if !self.allows(&parsed) {
            let origin = parsed.origin().ascii_serialization();
            return Err(Error::OriginNotAllowed(origin));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_case_are_normalised() {
        let list = OriginList::parse(&["https://CDN.example.com".into(), "http://127.0.0.1:8080/".into()]).unwrap();
        assert!(list.check("https://cdn.example.com:443/a.mp3?sig=1").is_ok());
        assert!(list.check("http://127.0.0.1:8080/x").is_ok());
        assert!(matches!(
            list.check("http://127.0.0.1:8081/x"),
            Err(Error::OriginNotAllowed(_))
        ));
        assert!(matches!(
            list.check("http://cdn.example.com/a.mp3"),
            Err(Error::OriginNotAllowed(_))
        ));
        assert!(matches!(
            list.check("file:///etc/passwd"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn origins_with_paths_are_rejected() {
        assert!(Origin::parse("http://h/path").is_err());
        assert!(Origin::parse("ftp://h").is_err());
        assert!(Origin::parse("not a url").is_err());
    }
}
