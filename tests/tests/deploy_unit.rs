//! rewindd started the way `deploy/rewindd.service` starts it comes up with
//! the shipped `deploy/rewindd.toml` and serves `rewindd snapshot` to the
//! admin group only.
//!
//! PID 1 here is not systemd (the tests run in a container), so the unit
//! cannot be started by systemd itself. What stands in: the test reads the
//! unit file and does what systemd does with it: the user and group from
//! `User=`/`Group=` and the groups of `SupplementaryGroups=` (created with
//! `useradd`/`groupadd` when missing, as the unit's install steps say),
//! no capabilities and no new privileges (`setpriv`), the `UMask=`, the
//! `Environment=` and nothing else, a runtime and a state directory with
//! the unit's modes, the config and kubeconfig installed with the modes and
//! groups of the unit's install steps, and `ExecStart=` as written, with
//! `/etc`, `/var/lib`, `/run` and `/usr/local/bin` moved under a scratch
//! root. `systemd-analyze verify` of the unit runs in `.ci/run`.
//!
//! Needs root (to create the accounts and switch to them); set
//! `REWIND_SKIP_ROOT_TESTS=1` to skip it elsewhere.

mod daemon_support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use daemon_support::*;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{settle_timeout, status_of, wait_settled};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `[Service]` settings of a unit file: key → values in order.
fn service_section(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_service = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').unwrap();
        out.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    out
}

fn one<'a>(unit: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    let v = unit
        .get(key)
        .unwrap_or_else(|| panic!("the unit has no {key}="));
    assert_eq!(v.len(), 1, "{key}= more than once");
    &v[0]
}

/// `(mode, group)` of the unit's install step for `dest`
/// (`install ... -m MODE -g GROUP <file> <dest>`).
fn install_step(unit_text: &str, dest: &str) -> (u32, String) {
    let line = unit_text
        .lines()
        .find(|l| l.starts_with('#') && l.contains(" install ") && l.contains(dest))
        .unwrap_or_else(|| panic!("the unit's install steps do not install {dest}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        let i = words.iter().position(|w| *w == flag).unwrap();
        words[i + 1].to_owned()
    };
    (u32::from_str_radix(&after("-m"), 8).unwrap(), after("-g"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// A started daemon, killed if the test fails before it stops it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn id_of(db: &str, name: &str) -> Option<u32> {
    let out = run(Command::new("getent").args([db, name]));
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .unwrap()
        .split(':')
        .nth(2)
        .and_then(|s| s.parse().ok())
}

/// Creates the unit's accounts if missing, exactly as its install steps do.
fn ensure_accounts(user: &str, group: &str, admin_group: &str) -> (u32, u32, u32) {
    if id_of("group", admin_group).is_none() {
        let out = run(Command::new("groupadd").args(["--system", admin_group]));
        assert!(out.status.success(), "groupadd: {out:?}");
    }
    if id_of("passwd", user).is_none() {
        let out = run(Command::new("useradd").args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ]));
        assert!(out.status.success(), "useradd: {out:?}");
    }
    (
        id_of("passwd", user).unwrap(),
        id_of("group", group).unwrap(),
        id_of("group", admin_group).unwrap(),
    )
}

fn is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some((u, g)) = owner {
        std::os::unix::fs::chown(path, Some(u), Some(g)).unwrap();
    }
}

fn install(from: &[u8], to: &Path, mode: u32, gid: u32) {
    std::fs::write(to, from).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(to, Some(0), Some(gid)).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `rewindd` as uid/gid 65534 (nobody) with `groups`, a clean environment.
fn as_nobody(bin: &Path, groups: Option<u32>, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534"]);
    match groups {
        Some(g) => cmd.arg(format!("--groups={g}")),
        None => cmd.arg("--clear-groups"),
    };
    cmd.args(["--inh-caps=-all", "--no-new-privs", "--"])
        .arg(bin)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    run(&mut cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_unit_starts_as_shipped_and_serves_snapshot_to_admin_group_only() {
    if !is_root() {
        assert!(
            std::env::var_os("REWIND_SKIP_ROOT_TESTS").is_some(),
            "this test needs root (accounts, setpriv); REWIND_SKIP_ROOT_TESTS=1 skips it"
        );
        eprintln!("skipped: not root and REWIND_SKIP_ROOT_TESTS is set");
        return;
    }
    let unit_text = std::fs::read_to_string(repo().join("deploy/rewindd.service")).unwrap();
    let unit = service_section(&unit_text);
    let config_text = std::fs::read_to_string(repo().join("deploy/rewindd.toml")).unwrap();

    // The unit and the config agree on the admin group.
    let user = one(&unit, "User");
    let group = one(&unit, "Group");
    let supplementary: Vec<&str> = unit
        .get("SupplementaryGroups")
        .into_iter()
        .flatten()
        .flat_map(|v| v.split_whitespace())
        .collect();
    let admin_group = config_text
        .lines()
        .find_map(|l| l.strip_prefix("admin_group = "))
        .map(|v| v.trim_matches('"'))
        .expect("deploy/rewindd.toml sets admin_group");
    assert!(
        supplementary.contains(&admin_group),
        "the unit's SupplementaryGroups= {supplementary:?} lack the config's admin_group {admin_group}"
    );
    assert!(
        one(&unit, "RestartPreventExitStatus")
            .split_whitespace()
            .any(|c| c == rewind_daemon::admin::EXIT_DEPLOYMENT.to_string()),
        "RestartPreventExitStatus= must name rewindd's deployment-error status"
    );
    let umask = one(&unit, "UMask");
    let runtime_mode = u32::from_str_radix(one(&unit, "RuntimeDirectoryMode"), 8).unwrap();
    let state_mode = u32::from_str_radix(one(&unit, "StateDirectoryMode"), 8).unwrap();
    let (config_mode, config_group) = install_step(&unit_text, "/etc/rewind/rewindd.toml");
    let (kubeconfig_mode, kubeconfig_group) = install_step(&unit_text, "/etc/rewind/kubeconfig");
    let (uid, gid, admin_gid) = ensure_accounts(user, group, admin_group);

    let cp = ControlPlane::start().await.unwrap();
    let _ = load_plane(&cp.admin_client(), 1).await;

    // The scratch root: /etc, /var/lib, /run and /usr/local/bin under it.
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    mkdir(root, 0o755, None);
    let rebase = |s: &str| {
        s.replace("/etc/rewind/", &format!("{}/etc/rewind/", root.display()))
            .replace(
                "/var/lib/rewind",
                &format!("{}/var/lib/rewind", root.display()),
            )
            .replace("/run/rewind/", &format!("{}/run/rewind/", root.display()))
            .replace(
                "/usr/local/bin/",
                &format!("{}/usr/local/bin/", root.display()),
            )
    };
    for d in ["etc", "var/lib", "run", "usr/local/bin"] {
        mkdir(&root.join(d), 0o755, None);
    }
    mkdir(&root.join("etc/rewind"), 0o755, None);
    let bin = root.join("usr/local/bin/rewindd");
    std::fs::copy(rewindd_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = root.join("var/lib/rewind");
    mkdir(&state, state_mode, Some((uid, gid)));
    let runtime = root.join("run/rewind");
    mkdir(&runtime, runtime_mode, Some((uid, gid)));

    // The shipped config, paths moved, metrics on a free port.
    let port = rewind_tests::daemon::free_port().unwrap();
    for setting in [
        "data_dir = \"/var/lib/rewind\"",
        "kubeconfig = \"/etc/rewind/kubeconfig\"",
        "path = \"/var/lib/rewind/store\"",
        "admin_socket = \"/run/rewind/rewindd.sock\"",
        "metrics_addr = \"127.0.0.1:9464\"",
    ] {
        assert!(
            config_text.contains(setting),
            "deploy/rewindd.toml: {setting}"
        );
    }
    let config = rebase(&config_text).replace("127.0.0.1:9464", &format!("127.0.0.1:{port}"));
    let config_path = root.join("etc/rewind/rewindd.toml");
    install(
        config.as_bytes(),
        &config_path,
        config_mode,
        id_of("group", &config_group).unwrap(),
    );
    install(
        &std::fs::read(cp.readonly_kubeconfig_path()).unwrap(),
        &root.join("etc/rewind/kubeconfig"),
        kubeconfig_mode,
        id_of("group", &kubeconfig_group).unwrap(),
    );
    let socket = runtime.join("rewindd.sock");
    let config_arg = config_path.to_str().unwrap();
    let socket_arg = socket.to_str().unwrap();

    // ExecStart= as written, as systemd would run it.
    let exec: Vec<String> = rebase(one(&unit, "ExecStart"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let env: Vec<(String, String)> = unit
        .get("Environment")
        .into_iter()
        .flatten()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let start = |exec: &[String], groups: &[&str], log: &Path| {
        let log = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={user}"))
            .arg(format!("--regid={group}"));
        if groups.is_empty() {
            cmd.arg("--clear-groups");
        } else {
            cmd.arg(format!("--groups={}", groups.join(",")));
        }
        // CapabilityBoundingSet= and AmbientCapabilities= empty, NoNewPrivileges=yes.
        cmd.args([
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            "sh",
            "-c",
            "umask \"$0\" && exec \"$@\"",
            umask,
        ])
        .args(exec)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        Running(cmd.spawn().unwrap())
    };

    // Without the supplementary group rewindd cannot read the installed
    // config, nor (with a config its own group may read) give the socket
    // to the admin group. Either way it says what is wrong and exits with
    // the status the unit does not restart on.
    let own_group_config = root.join("etc/rewind/own-group.toml");
    install(config.as_bytes(), &own_group_config, 0o640, gid);
    for (case, exec, expect) in [
        (
            "the installed config",
            exec.clone(),
            vec![format!("{config_arg}: Permission denied")],
        ),
        (
            "a config readable by its own group",
            exec.iter()
                .map(|a| {
                    if a == config_arg {
                        own_group_config.display().to_string()
                    } else {
                        a.clone()
                    }
                })
                .collect(),
            vec![
                format!("group `{admin_group}`"),
                format!("SupplementaryGroups={admin_group}"),
            ],
        ),
    ] {
        let log = root.join("without-group.log");
        let mut child = start(&exec, &[], &log);
        let began = Instant::now();
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                began.elapsed() < Duration::from_secs(120),
                "{case}: rewindd without the admin group kept running:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let out = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            status.code(),
            Some(i32::from(rewind_daemon::admin::EXIT_DEPLOYMENT)),
            "{case}: {out}"
        );
        for e in expect {
            assert!(out.contains(&e), "{case}: no {e:?} in: {out}");
        }
    }

    // As the unit starts it: up, listening, every watcher watching.
    let log = root.join("rewindd.log");
    let mut child = start(&exec, &supplementary, &log);
    let pid = child.0.id();
    let settled = wait_settled(
        || status_of(&state, pid),
        Duration::from_secs(2),
        settle_timeout(),
        "the unit's start",
    )
    .await;
    if let Err(e) = settled {
        panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    let md = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.permissions().mode() & 0o777),
        (uid, admin_gid, 0o660),
        "socket owner, group, mode"
    );
    // Everything in the state directory is the daemon's and private (UMask=).
    let mut paths = Vec::new();
    let mut todo = vec![state.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                todo.push(p.clone());
            }
            paths.push((p, md));
        }
    }
    for (p, md) in &paths {
        assert_eq!(md.uid(), uid, "{} not owned by {user}", p.display());
        assert_eq!(
            md.permissions().mode() & 0o077,
            0,
            "{} is {:o}",
            p.display(),
            md.permissions().mode()
        );
    }

    // A member of the admin group (and nothing else) gets a snapshot, with
    // the socket path read from the installed config.
    let member = as_nobody(
        &bin,
        Some(admin_gid),
        &["--config", config_arg, "snapshot", "--wait"],
    );
    assert!(
        member.status.success() && text(&member.stdout).contains("stored:  yes"),
        "member of {admin_group}: {member:?}\n{}",
        text(&member.stderr)
    );
    // Anyone else is refused, and told who may ask.
    let outsider = as_nobody(&bin, None, &["snapshot", "--socket", socket_arg]);
    let err = text(&outsider.stderr);
    assert!(!outsider.status.success(), "outsider: {outsider:?}");
    assert!(
        err.contains("permission denied on admin socket")
            && err.contains(&format!("members of group `{admin_group}`")),
        "outsider's error: {err}"
    );
    // The config is not theirs to read either; the error names it.
    let outsider = as_nobody(&bin, None, &["--config", config_arg, "snapshot"]);
    let err = text(&outsider.stderr);
    assert!(
        !outsider.status.success() && err.contains(config_arg),
        "outsider with --config: {err}"
    );

    // Stop as systemd does (SIGTERM): a clean exit, the socket removed.
    let sent = run(Command::new("kill").args(["-TERM", &pid.to_string()]));
    assert!(sent.status.success());
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "{status}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!socket.exists());
}
