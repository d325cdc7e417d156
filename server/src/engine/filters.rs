//! The `filters` query parameter of list, prune and events calls: a JSON map from a key to
//! its values, in the current shape `{"label":{"a=b":true}}` or the legacy one
//! `{"label":["a=b"]}` that docker-py still sends. Moby's parser takes both; so do we.

use std::collections::{BTreeMap, HashMap};

use super::error::ApiError;

#[derive(Debug, Default, Clone)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the parameter; `allowed` lists the keys the call understands (others are a
    /// 400, as Docker answers `invalid filter 'x'`).
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Filters, ApiError> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(Filters::default());
        };
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ApiError::bad(format!("invalid filter: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad("invalid filter: not a JSON object"));
        };
        let mut out = BTreeMap::new();
        for (key, values) in map {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad(format!("invalid filter '{key}'")));
            }
            let list: Vec<String> = match values {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, v)| v.as_bool().unwrap_or(true))
                    .map(|(k, _)| k)
                    .collect(),
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    .collect(),
                serde_json::Value::String(s) => vec![s],
                other => return Err(ApiError::bad(format!("invalid filter value for '{key}': {other}"))),
            };
            out.insert(key, list);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }

    /// Whether `value` matches one of the key's values, if the key was given at all
    /// (values of one key are alternatives, different keys must all hold).
    pub fn any(&self, key: &str, matches: impl Fn(&str) -> bool) -> bool {
        let values = self.get(key);
        values.is_empty() || values.iter().any(|v| matches(v))
    }

    /// `label=k` and `label=k=v` filters: every one must hold.
    pub fn labels_match(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        self.get(key).iter().all(|want| label_matches(want, labels))
    }

    /// `label!=k=v` and the like.
    pub fn labels_excluded(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        self.get(key).iter().all(|want| !label_matches(want, labels))
    }

    /// `dangling=true|false` and such boolean filters: None when not given.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key).first().map(String::as_str) {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad(format!("invalid filter '{key}={other}'"))),
        }
    }
}

pub fn label_matches(want: &str, labels: &HashMap<String, String>) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    }
}

/// Docker's name filters match a substring (or a regular expression); we take the
/// substring and, when it compiles, the expression.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_start_matches('/');
    let pattern_plain = pattern.trim_start_matches('/');
    if name.contains(pattern_plain) {
        return true;
    }
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(name) || re.is_match(&format!("/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse() {
        let f = Filters::parse(
            Some(r#"{"label":{"a=b":true},"status":["exited"]}"#),
            &["label", "status"],
        )
        .unwrap();
        assert_eq!(f.get("label"), ["a=b"]);
        assert_eq!(f.get("status"), ["exited"]);
        assert!(Filters::parse(Some(r#"{"bogus":["x"]}"#), &["label"]).is_err());
        assert!(Filters::parse(None, &[]).unwrap().is_empty());
    }

    #[test]
    fn labels() {
        let labels: HashMap<String, String> = [("com.docker.compose.project".to_string(), "demo".to_string())].into();
        assert!(label_matches("com.docker.compose.project", &labels));
        assert!(label_matches("com.docker.compose.project=demo", &labels));
        assert!(!label_matches("com.docker.compose.project=other", &labels));
        assert!(name_matches("we", "/web-1"));
        assert!(name_matches("^/web", "/web-1"));
        assert!(!name_matches("db", "web"));
    }
}
