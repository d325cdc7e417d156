//! An exercise as a lesson's header declares it: its setup, its checks and its hints.
//! The YAML is read into the `*Spec` types (unknown keys are errors, so a misspelt field
//! is reported with its line), then [`validate`] turns each check into a [`Check`] with
//! exactly one kind, or says what is wrong. The grader (`crate::grader`) evaluates them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The exercise as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExerciseMeta {
    pub id: String,
    pub title: String,
    pub task: String,
    /// Nodes its playground needs [default: 1].
    pub nodes: Option<usize>,
    #[serde(default)]
    pub setup: Setup,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    #[serde(default)]
    pub hints: Vec<HintSpec>,
    /// A bash script, run in node1 by lesson CI; shown on request or once done.
    pub solution: Option<String>,
}

/// What is placed in the nodes before the learner starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    #[serde(default)]
    pub files: Vec<SetupFile>,
    /// A bash script run in node1 after the files are written.
    pub script: Option<String>,
}

impl Setup {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.script.is_none()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupFile {
    pub path: String,
    pub node: Option<String>,
    /// Octal, as a string ("0755") [default: 0644].
    pub mode: Option<String>,
    pub content: String,
}

impl SetupFile {
    pub fn mode(&self) -> Option<u32> {
        match &self.mode {
            None => Some(0o644),
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HintSpec {
    Text(String),
    Offered { text: String, when: Box<CheckSpec> },
}

impl HintSpec {
    pub fn text(&self) -> &str {
        match self {
            HintSpec::Text(t) | HintSpec::Offered { text: t, .. } => t,
        }
    }
}

/// Bounds on a count or a size; either may be left out.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Range {
    pub fn holds(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
    pub fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) => format!("between {a} and {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => "any".into(),
        }
    }
}

/// A check as written: the common fields and one kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub description: Option<String>,
    pub hint: Option<String>,
    pub node: Option<String>,
    pub image: Option<ImageCheck>,
    pub container: Option<ContainerCheck>,
    pub volume: Option<VolumeCheck>,
    pub network: Option<NetworkCheck>,
    pub compose: Option<ComposeCheck>,
    pub http: Option<HttpCheck>,
    pub exec: Option<ExecCheck>,
    pub file: Option<FileCheck>,
    pub event: Option<EventCheck>,
    pub all_of: Option<Vec<CheckSpec>>,
    pub any_of: Option<Vec<CheckSpec>>,
    pub not: Option<Box<CheckSpec>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCheck {
    pub name: String,
    pub built: Option<bool>,
    pub base: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub layers: Option<Range>,
    pub size_mb: Option<Range>,
    pub user: Option<String>,
    #[serde(default)]
    pub exposes: Vec<StringOrNumber>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
}

/// `5000` or `"5000/tcp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    Number(u64),
    String(String),
}

impl StringOrNumber {
    /// As Docker keys ports: `5000/tcp`.
    pub fn port_key(&self) -> String {
        let s = match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::String(s) => s.clone(),
        };
        if s.contains('/') { s } else { format!("{s}/tcp") }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerCheck {
    pub name: Option<String>,
    pub image: Option<String>,
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub ports: Vec<PortCheck>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub mounts: Vec<MountCheck>,
    #[serde(default)]
    pub networks: Vec<String>,
    pub restart_policy: Option<String>,
    pub restart_count: Option<Range>,
    pub health: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub count: Option<Range>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortCheck {
    pub container: u16,
    pub host: Option<u16>,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountCheck {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub volume: Option<String>,
    pub source: Option<String>,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCheck {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub file: Option<VolumeFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeFile {
    pub path: String,
    pub contains: Option<String>,
    pub matches: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCheck {
    pub name: String,
    pub driver: Option<String>,
    pub subnet: Option<String>,
    pub internal: Option<bool>,
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeCheck {
    pub project: String,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub replicas: BTreeMap<String, usize>,
    pub healthy: Option<bool>,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub port: u16,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub contains: Option<String>,
    pub matches: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    pub command: String,
    pub container: Option<String>,
    pub exit_code: Option<i32>,
    pub contains: Option<String>,
    pub matches: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    pub path: String,
    pub exists: Option<bool>,
    pub contains: Option<String>,
    pub matches: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCheck {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub action: String,
    pub name: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A validated check: one kind, its regular expressions compiled.
#[derive(Debug, Clone)]
pub struct Check {
    /// Markdown (inline), shown to the learner; empty inside `all_of` and the like.
    pub description: String,
    pub hint: Option<String>,
    pub node: String,
    pub kind: CheckKind,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    Image(ImageCheck),
    Container(ContainerCheck),
    Volume(VolumeCheck, Option<Text>),
    Network(NetworkCheck),
    Compose(ComposeCheck),
    Http(HttpCheck, Text),
    Exec(ExecCheck, Text),
    File(FileCheck, Text),
    Event(EventCheck, Vec<(String, regex::Regex)>),
    AllOf(Vec<Check>),
    AnyOf(Vec<Check>),
    Not(Box<Check>),
}

/// A compiled `contains`/`matches` pair.
#[derive(Debug, Clone, Default)]
pub struct Text {
    pub contains: Option<String>,
    pub matches: Option<regex::Regex>,
}

impl Text {
    /// Text a check looks for: a substring, a regular expression, or both.
    fn compile(contains: &Option<String>, matches: &Option<String>) -> Result<Text, String> {
        let matches = match matches {
            Some(p) => Some(regex::Regex::new(p).map_err(|e| format!("`matches: {p}` is not a valid pattern: {e}"))?),
            None => None,
        };
        Ok(Text {
            contains: contains.clone(),
            matches,
        })
    }

    /// Whether `s` holds the text; otherwise what it lacks.
    pub fn test(&self, s: &str) -> Result<(), String> {
        if let Some(c) = &self.contains
            && !s.contains(c.as_str())
        {
            return Err(format!("does not contain “{c}”"));
        }
        if let Some(r) = &self.matches
            && !r.is_match(s)
        {
            return Err(format!("does not match /{}/", r.as_str()));
        }
        Ok(())
    }
}

const STATUSES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "exited",
    "removing",
    "dead",
];
const POLICIES: &[&str] = &["no", "always", "on-failure", "unless-stopped"];
const HEALTH: &[&str] = &["starting", "healthy", "unhealthy"];
const EVENT_TYPES: &[&str] = &["container", "image", "volume", "network", "build"];
const MOUNT_TYPES: &[&str] = &["volume", "bind", "tmpfs"];

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("{what} `{value}` is not one of {}", allowed.join(", ")))
    }
}

fn node_name(node: &Option<String>, nodes: usize) -> Result<String, String> {
    let name = node.clone().unwrap_or_else(|| "node1".into());
    let n: Option<usize> = name.strip_prefix("node").and_then(|n| n.parse().ok());
    match n {
        Some(n) if (1..=nodes).contains(&n) => Ok(name),
        _ => Err(format!(
            "node `{name}` is not one of the exercise's nodes (node1 to node{nodes})"
        )),
    }
}

/// Checks a check as written; `top` ones need a description. `nodes` is the exercise's.
pub fn validate(spec: &CheckSpec, nodes: usize, top: bool) -> Result<Check, String> {
    let description = spec.description.clone().unwrap_or_default();
    if top && description.trim().is_empty() {
        return Err("every check needs a `description` for the learner".into());
    }
    let node = node_name(&spec.node, nodes)?;
    let mut kinds = Vec::new();
    if let Some(c) = &spec.image {
        if c.name.trim().is_empty() {
            return Err("image: `name` is empty".into());
        }
        kinds.push(CheckKind::Image(c.clone()));
    }
    if let Some(c) = &spec.container {
        if let Some(s) = &c.status {
            one_of("container status", s, STATUSES)?;
        }
        if let Some(p) = &c.restart_policy {
            one_of("restart policy", p, POLICIES)?;
        }
        if let Some(h) = &c.health {
            one_of("health", h, HEALTH)?;
        }
        for m in &c.mounts {
            if let Some(t) = &m.kind {
                one_of("mount type", t, MOUNT_TYPES)?;
            }
            if !m.destination.starts_with('/') {
                return Err(format!(
                    "mount destination `{}` must be an absolute path",
                    m.destination
                ));
            }
        }
        kinds.push(CheckKind::Container(c.clone()));
    }
    if let Some(c) = &spec.volume {
        let text = match &c.file {
            Some(f) => {
                if f.path.trim_matches('/').is_empty() {
                    return Err("volume: `file.path` is empty".into());
                }
                Some(Text::compile(&f.contains, &f.matches)?)
            }
            None => None,
        };
        kinds.push(CheckKind::Volume(c.clone(), text));
    }
    if let Some(c) = &spec.network {
        if let Some(s) = &c.subnet
            && !s.contains('/')
        {
            return Err(format!("network subnet `{s}` must be in CIDR form (172.30.0.0/16)"));
        }
        kinds.push(CheckKind::Network(c.clone()));
    }
    if let Some(c) = &spec.compose {
        kinds.push(CheckKind::Compose(c.clone()));
    }
    if let Some(c) = &spec.http {
        if c.port == 0 {
            return Err("http: `port` must be 1 to 65535".into());
        }
        kinds.push(CheckKind::Http(c.clone(), Text::compile(&c.contains, &c.matches)?));
    }
    if let Some(c) = &spec.exec {
        if c.command.trim().is_empty() {
            return Err("exec: `command` is empty".into());
        }
        kinds.push(CheckKind::Exec(c.clone(), Text::compile(&c.contains, &c.matches)?));
    }
    if let Some(c) = &spec.file {
        if !c.path.starts_with('/') {
            return Err(format!("file: `{}` must be an absolute path in the node", c.path));
        }
        kinds.push(CheckKind::File(c.clone(), Text::compile(&c.contains, &c.matches)?));
    }
    if let Some(c) = &spec.event {
        if let Some(t) = &c.kind {
            one_of("event type", t, EVENT_TYPES)?;
        }
        let mut attrs = Vec::new();
        for (k, v) in &c.attributes {
            // Anchored: `cache_hit: "true"` means exactly that.
            let r = regex::Regex::new(&format!("^(?:{v})$"))
                .map_err(|e| format!("event attribute `{k}: {v}` is not a valid pattern: {e}"))?;
            attrs.push((k.clone(), r));
        }
        kinds.push(CheckKind::Event(c.clone(), attrs));
    }
    let list = |specs: &Vec<CheckSpec>, what: &str| -> Result<Vec<Check>, String> {
        if specs.is_empty() {
            return Err(format!("`{what}` needs at least one check"));
        }
        specs.iter().map(|s| validate(s, nodes, false)).collect()
    };
    if let Some(all) = &spec.all_of {
        kinds.push(CheckKind::AllOf(list(all, "all_of")?));
    }
    if let Some(any) = &spec.any_of {
        kinds.push(CheckKind::AnyOf(list(any, "any_of")?));
    }
    if let Some(not) = &spec.not {
        kinds.push(CheckKind::Not(Box::new(validate(not, nodes, false)?)));
    }
    if kinds.len() != 1 {
        return Err(format!(
            "a check has exactly one kind (image, container, volume, network, compose, http, exec, file, event, all_of, any_of or not); {}",
            if kinds.is_empty() {
                "this one has none".to_string()
            } else {
                format!("this one has {}", kinds.len())
            }
        ));
    }
    Ok(Check {
        description,
        hint: spec.hint.clone(),
        node,
        kind: kinds.pop().expect("one kind"),
    })
}

impl Check {
    /// The kinds of engine event that can change this check's result; `None` for checks
    /// that look outside the engine (files, commands, HTTP), which are also polled.
    pub fn event_types(&self, out: &mut Vec<&'static str>) -> bool {
        let mut add = |ts: &[&'static str]| {
            for t in ts {
                if !out.contains(t) {
                    out.push(t);
                }
            }
        };
        match &self.kind {
            CheckKind::Image(_) => add(&["image", "build"]),
            CheckKind::Container(_) => add(&["container", "network", "volume", "image"]),
            CheckKind::Volume(_, None) => add(&["volume"]),
            CheckKind::Volume(_, Some(_)) => {
                add(&["volume", "container"]);
                return true;
            }
            CheckKind::Network(_) => add(&["network", "container"]),
            CheckKind::Compose(_) => add(&["container", "network", "volume"]),
            CheckKind::Event(e, _) => match &e.kind {
                Some(t) => add(&[match t.as_str() {
                    "container" => "container",
                    "image" => "image",
                    "volume" => "volume",
                    "network" => "network",
                    _ => "build",
                }]),
                None => add(&["container", "image", "volume", "network", "build"]),
            },
            CheckKind::Http(..) | CheckKind::Exec(..) | CheckKind::File(..) => {
                add(&["container", "image", "volume", "network", "build"]);
                return true;
            }
            CheckKind::AllOf(cs) | CheckKind::AnyOf(cs) => {
                let mut polled = false;
                for c in cs {
                    polled |= c.event_types(out);
                }
                return polled;
            }
            CheckKind::Not(c) => return c.event_types(out),
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Check, String> {
        let spec: CheckSpec = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        validate(&spec, 2, true)
    }

    #[test]
    fn a_check_has_one_kind_and_a_description() {
        assert!(parse("description: v\nvolume: {name: notes}\n").is_ok());
        assert!(parse("volume: {name: notes}\n").unwrap_err().contains("description"));
        let two = parse("description: x\nvolume: {name: a}\nnetwork: {name: b}\n").unwrap_err();
        assert!(two.contains("has 2"), "{two}");
        assert!(parse("description: x\n").unwrap_err().contains("has none"));
        assert!(
            parse("description: x\nvolum: {name: a}\n")
                .unwrap_err()
                .contains("volum")
        );
    }

    #[test]
    fn fields_are_checked() {
        assert!(
            parse("description: x\ncontainer: {status: sleeping}\n")
                .unwrap_err()
                .contains("sleeping")
        );
        assert!(
            parse("description: x\nfile: {path: relative}\n")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            parse("description: x\nnode: node3\nfile: {path: /a}\n")
                .unwrap_err()
                .contains("node3")
        );
        assert!(
            parse("description: x\nhttp: {port: 80, matches: '('}\n")
                .unwrap_err()
                .contains("pattern")
        );
        let nested = parse("description: x\nall_of: [{volume: {name: a}}, {not: {network: {name: b}}}]\n").unwrap();
        assert!(matches!(nested.kind, CheckKind::AllOf(ref v) if v.len() == 2));
        assert!(
            parse("description: x\nany_of: []\n")
                .unwrap_err()
                .contains("at least one")
        );
    }

    #[test]
    fn text_matches_substrings_and_patterns() {
        let t = Text::compile(&Some("hello".into()), &Some(r"(?m)^v\d+$".into())).unwrap();
        assert!(t.test("hello\nv12\n").is_ok());
        assert!(t.test("hello v12").is_err());
        assert!(t.test("v1").unwrap_err().contains("hello"));
    }

    #[test]
    fn hints_are_text_or_offered() {
        let hints: Vec<HintSpec> =
            serde_norway::from_str("- plain\n- text: offered\n  when: {container: {name: w, status: exited}}\n")
                .unwrap();
        assert_eq!(hints[0].text(), "plain");
        assert!(matches!(&hints[1], HintSpec::Offered { text, .. } if text == "offered"));
    }
}
