//! Image references as Docker reads them: `nginx` is `docker.io/library/nginx:latest`,
//! `localhost:5000/me/app:1.0` names a registry, `name@sha256:...` pins a digest.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// "docker.io", "localhost:5000", "registry.lab"...
    pub registry: String,
    /// "library/nginx", "me/app".
    pub repository: String,
    pub tag: Option<String>,
    /// "sha256:<hex>".
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format: {0}")]
pub struct ReferenceError(pub String);

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

fn valid_component(c: &str) -> bool {
    // Lower-case alphanumerics separated by '.', '_', '__' or '-' runs.
    !c.is_empty()
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
        && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
}

fn valid_tag(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let err = || ReferenceError(s.to_string());
        if s.is_empty() || s.len() > 255 + 128 + 72 || s.chars().any(|c| c.is_whitespace()) {
            return Err(err());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) if valid_digest(d) => (r, Some(d.to_string())),
            Some(_) => return Err(err()),
            None => (s, None),
        };
        // A tag follows the last ':' unless that ':' belongs to a registry's port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(err());
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if path.split('/').any(|c| !valid_component(c)) {
            return Err(err());
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// With the default tag when neither a tag nor a digest was given.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// "nginx", "me/app", "localhost:5000/app": the name as `docker images` shows it.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// "nginx:latest": the key under which the store keeps a tag.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation() {
        let r = Reference::parse("nginx").unwrap().with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.familiar(), "nginx:latest");
        let r = Reference::parse("python:3.13-slim").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("library/python", Some("3.13-slim"))
        );
        let r = Reference::parse("localhost:5000/me/app:1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "me/app", Some("1.0"))
        );
        assert_eq!(r.familiar(), "localhost:5000/me/app:1.0");
        let r = Reference::parse("registry.lab/ada/hello-py:1.0").unwrap();
        assert_eq!(r.registry, "registry.lab");
        let r = Reference::parse("slipway/node").unwrap().with_default_tag();
        assert_eq!(r.familiar(), "slipway/node:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.clone().with_default_tag().tag, None);
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "UPPER",
            "a b",
            "nginx:",
            "nginx:bad tag",
            "-x",
            "x@sha256:short",
            "a//b",
            "nginx:.x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
