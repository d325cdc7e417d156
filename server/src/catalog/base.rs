//! The two base images made without a Dockerfile: busybox from Debian's busybox-static,
//! and debian:trixie-slim by debootstrap, slimmed as the official slim images are.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use slipway_runtime::image::config::{History, ImageConfig, now_rfc3339};
use slipway_runtime::image::reference::Reference;
use slipway_runtime::image::store::Store;
use tokio::io::AsyncBufReadExt;

fn tag_all(store: &Store, id: &str, refs: &[String]) -> Result<()> {
    for r in refs {
        store.tag(id, &Reference::parse(r)?)?;
    }
    Ok(())
}

/// busybox:<version> and busybox:latest: the static busybox and its applets, an /etc with
/// root and nobody, /tmp and /root.
pub fn busybox(store: &Store) -> Result<String> {
    let binary = Path::new("/bin/busybox");
    if !binary.is_file() {
        bail!("busybox needs Debian's busybox-static: apt-get install busybox-static");
    }
    let banner = std::process::Command::new(binary).output().context("running busybox")?;
    let banner = String::from_utf8_lossy(&banner.stdout).into_owned();
    let version = banner
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix('v')
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .context("busybox printed no version")?
        .to_string();
    let list = std::process::Command::new(binary)
        .arg("--list-full")
        .output()
        .context("listing busybox applets")?;
    let staging = store.temp_dir("busybox")?;
    let root = staging.join("root");
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "tmp",
        "var/spool/mail",
        "var/www",
        "home",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(binary, root.join("bin/busybox"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let target = root.join(applet);
        if target.exists() {
            continue;
        }
        let depth = applet.matches('/').count();
        let link = format!("{}bin/busybox", "../".repeat(depth));
        std::os::unix::fs::symlink(link, &target)?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")?;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::set_permissions(root.join("root"), std::fs::Permissions::from_mode(0o700))?;
    let layer = store.commit_dir(&root)?;
    let _ = std::fs::remove_dir_all(&staging);
    let mut config = ImageConfig::scratch();
    config.created = now_rfc3339();
    config.config.env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    config.config.cmd = Some(vec!["sh".into()]);
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: config.created.clone(),
        created_by: format!("slipway: busybox {version} from Debian's busybox-static"),
        ..Default::default()
    });
    config.history.push(History {
        created: config.created.clone(),
        created_by: "/bin/sh -c #(nop)  CMD [\"sh\"]".into(),
        empty_layer: true,
        ..Default::default()
    });
    let id = store.put_image(&config, &[layer], None)?;
    tag_all(store, &id, &[format!("busybox:{version}"), "busybox:latest".into()])?;
    Ok(id)
}

/// The Debian mirror the host's apt uses (the only one this machine may reach).
pub fn host_mirror() -> String {
    let deb822 = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    for line in deb822.lines() {
        if let Some(uris) = line.strip_prefix("URIs:") {
            for uri in uris.split_whitespace() {
                if !uri.contains("security") {
                    return uri.trim_end_matches('/').to_string();
                }
            }
        }
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in list.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"deb")
            && let Some(uri) = words.iter().find(|w| w.starts_with("http"))
            && !uri.contains("security")
        {
            return uri.trim_end_matches('/').to_string();
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// debian:trixie-slim (and trixie, 13, 13.x-slim, latest): debootstrap's minbase, with the
/// official slim image's dpkg exclusions and apt settings, apt pointed at the host's
/// mirror.
pub async fn debian(store: &Store, report: &(dyn Fn(&str) + Send + Sync)) -> Result<String> {
    if which("debootstrap").is_none() {
        bail!("debian:trixie-slim needs debootstrap: apt-get install debootstrap");
    }
    let mirror = host_mirror();
    let staging = store.temp_dir("debian")?;
    let root = staging.join("root");
    std::fs::create_dir(&root)?;
    // In a mount namespace of its own: whatever debootstrap mounts in the target stays
    // out of the host's mount table, even if it fails half-way.
    let mut child = tokio::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "debootstrap",
            "--variant=minbase",
            "trixie",
        ])
        .arg(&root)
        .arg(&mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting debootstrap")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut last = String::new();
    while let Some(line) = lines.next_line().await? {
        if line.starts_with("I: Retrieving")
            || line.starts_with("I: Validating")
            || line.starts_with("I: Unpacking")
            || line.starts_with("I: Configuring")
            || line.starts_with("I: Extracting")
        {
            // The package-by-package lines are too many for a terminal; sample them.
            if line.split_whitespace().nth(1) != last.split_whitespace().nth(1) {
                report(&line);
            }
            last = line;
        } else {
            report(&line);
        }
    }
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("piped"), &mut err)
        .await
        .ok();
    let status = child.wait().await?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        bail!("debootstrap failed ({status}): {}", err.trim());
    }
    slim(&root, &mirror)?;
    let version = std::fs::read_to_string(root.join("etc/debian_version"))
        .unwrap_or_default()
        .trim()
        .to_string();
    report(&format!("Debian {version}: committing the layer"));
    let layer = store.commit_dir(&root)?;
    let _ = std::fs::remove_dir_all(&staging);
    let mut config = ImageConfig::scratch();
    config.created = now_rfc3339();
    config.config.env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    config.config.cmd = Some(vec!["bash".into()]);
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: config.created.clone(),
        created_by: format!("slipway: debootstrap --variant=minbase trixie {mirror} (Debian {version})"),
        ..Default::default()
    });
    config.history.push(History {
        created: config.created.clone(),
        created_by: "/bin/sh -c #(nop)  CMD [\"bash\"]".into(),
        empty_layer: true,
        ..Default::default()
    });
    let id = store.put_image(&config, &[layer], None)?;
    let mut tags = vec![
        "debian:trixie-slim".to_string(),
        "debian:trixie".into(),
        "debian:13-slim".into(),
        "debian:13".into(),
        "debian:latest".into(),
    ];
    if !version.is_empty() && version != "13" {
        tags.push(format!("debian:{version}-slim"));
        tags.push(format!("debian:{version}"));
    }
    tag_all(store, &id, &tags)?;
    Ok(id)
}

/// The official slim images' settings: no docs, man pages or translations, apt caches
/// cleaned after each install; apt points at the host's mirror.
fn slim(root: &Path, mirror: &str) -> Result<()> {
    std::fs::create_dir_all(root.join("etc/dpkg/dpkg.cfg.d"))?;
    std::fs::write(
        root.join("etc/dpkg/dpkg.cfg.d/docker"),
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/groff/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/lintian/*\npath-exclude /usr/share/linda/*\npath-exclude /usr/share/locale/*\n",
    )?;
    let apt = root.join("etc/apt/apt.conf.d");
    std::fs::create_dir_all(&apt)?;
    std::fs::write(
        apt.join("docker-clean"),
        "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\nAPT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\nDir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n",
    )?;
    std::fs::write(apt.join("docker-no-languages"), "Acquire::Languages \"none\";\n")?;
    std::fs::write(apt.join("docker-gzip-indexes"), "Acquire::GzipIndexes \"true\";\n")?;
    std::fs::write(
        apt.join("docker-autoremove-suggests"),
        "Apt::AutoRemove::SuggestsImportant \"false\";\n",
    )?;
    std::fs::write(root.join("etc/dpkg/dpkg.cfg.d/docker-apt-speedup"), "force-unsafe-io\n")?;
    // Packages' maintainer scripts must not start daemons inside a build container.
    let policy = root.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n")?;
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755))?;
    // The host's own apt settings for reaching its mirror (a snapshot mirror wants
    // Check-Valid-Until off, a proxy wants its address).
    for e in std::fs::read_dir("/etc/apt/apt.conf.d").into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if text.contains("Check-Valid-Until")
            || text.contains("Acquire::http::Proxy")
            || text.contains("Acquire::https::Proxy")
        {
            std::fs::write(apt.join(format!("90host-{}", e.file_name().to_string_lossy())), text)?;
        }
    }
    let security = if mirror.ends_with("/debian") {
        format!("{}-security", mirror)
    } else {
        mirror.replace("/debian", "/debian-security")
    };
    std::fs::create_dir_all(root.join("etc/apt/sources.list.d"))?;
    std::fs::write(
        root.join("etc/apt/sources.list.d/debian.sources"),
        format!(
            "Types: deb\nURIs: {mirror}\nSuites: trixie trixie-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: {security}\nSuites: trixie-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )?;
    let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
    // Nothing of the build host stays behind.
    for d in [
        "var/lib/apt/lists",
        "var/cache/apt/archives",
        "var/log",
        "tmp",
        "var/cache/debconf",
    ] {
        let p = root.join(d);
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            if e.file_name() == "partial" || e.file_name() == "lock" {
                continue;
            }
            let _ = if e.path().is_dir() {
                std::fs::remove_dir_all(e.path())
            } else {
                std::fs::remove_file(e.path())
            };
        }
    }
    for d in ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"] {
        let p = root.join(d);
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            if d == "usr/share/doc" && e.path().is_dir() {
                // Keep the copyright files, as the slim images do.
                for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                    if f.file_name() != "copyright" {
                        let _ = if f.path().is_dir() {
                            std::fs::remove_dir_all(f.path())
                        } else {
                            std::fs::remove_file(f.path())
                        };
                    }
                }
                continue;
            }
            let _ = if e.path().is_dir() {
                std::fs::remove_dir_all(e.path())
            } else {
                std::fs::remove_file(e.path())
            };
        }
    }
    std::fs::write(root.join("etc/hostname"), "")?;
    let _ = std::fs::remove_file(root.join("etc/resolv.conf"));
    std::fs::write(root.join("etc/resolv.conf"), "")?;
    Ok(())
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
