//! The local MQTT broker: Mosquitto 2.0 (Debian's `mosquitto` package), TLS with client
//! certificates required, with ACLs mirroring the AWS IoT claim and device policies as closely
//! as Mosquitto allows.
//!
//! # Two Mosquitto processes, three kinds of listener
//!
//! | process | listener | trusts (`cafile`) | who | access |
//! | --- | --- | --- | --- | --- |
//! | claim broker | claim | claim CA | devices under their claim certificate | `%c`-patterned: write `<prefix>/%c/json`, `<prefix>/%c/pull`; read `<prefix>/%c/frame`, `<prefix>/%c/rejected` |
//! | claim broker | service | service CA | the cloud side (data plane, rules) | everything |
//! | device broker | device | device CA | devices under their own certificate | per granted certificate (`user <CN>`, [`Broker::set_device_grants`]): write `<prefix>/<thing>/confirm`; read `<prefix>/<thing>/confirm/accepted`, `<prefix>/<thing>/rejected` |
//! | device broker | service | service CA | the cloud side | everything |
//!
//! Why two processes: the claim policy lets a claim certificate connect only with a claim client
//! id (`claim-…`), so a leaked claim key cannot take over a provisioned device's connection.
//! Mosquitto's only way to restrict client ids without a plugin is `clientid_prefixes`, which is
//! global to a process (it ignores `per_listener_settings`), and client ids are global to a
//! process too: a claim connection with a thing's client id would disconnect the thing on any
//! listener of the same process (session takeover). In a process of its own, the claim listener
//! gets `clientid_prefixes claim-` and a claim holder cannot touch a device's session at all.
//! The cost: the cloud side publishes to the broker that serves the topic's id (claim client ids
//! on the claim broker, thing names on the device broker: [`Broker::service_port_for`]), and its
//! client id on the claim broker must also start with the claim prefix.
//!
//! # Mosquitto facts the tests and tools design around
//!
//! - `pattern` lines apply to every client of the listener whose `acl_file` holds them, hence
//!   separate listeners and `per_listener_settings true`.
//! - `%c` is the client id the client chose: under the claim listener a claim holder may pick any
//!   `claim-<serial>` and read that serial's frames (AWS's `${iot:ClientId}` has the same
//!   weakness). In CSR mode the frames hold only a certificate, useless without the device's key;
//!   in key mode they hold a private key, which is why CSR mode is the default.
//! - With `use_identity_as_username true` the username is the certificate's CN. AWS authorises a
//!   device certificate by the thing it is attached to (`${iot:Connection.Thing.ThingName}`);
//!   Mosquitto has no such variable, so the device listener's ACL lists every granted
//!   certificate's CN with its thing's topics, rewritten and reloaded when the grants change.
//!   Mosquitto cannot force the client id to be the thing name (AWS's `iot:Connect` can): a
//!   device certificate may connect under another thing's client id (or the cloud side's) and so
//!   disconnect it (session takeover), though it still reaches only its own thing's topics. A
//!   denial of service, not a disclosure.
//! - A denied subscription is still acknowledged: Mosquitto 2.0.11 (Debian 12) even grants the
//!   QoS asked for (no 0x80 failure code), because `acl_file` read rules are checked when a
//!   message is delivered. Under MQTT 3.1.1 a denied QoS 1 publish still gets its PUBACK too.
//!   Isolation tests must therefore check that nothing is *delivered*, never that something
//!   was refused (`tests/broker.rs` and `tests/e2e.rs` do, with a positive control on the same
//!   connection).
//! - Subscribers are never told who published. The local topic rules therefore take the client
//!   id from the topic, which the ACLs bind to the publisher's client id (claim) or granted
//!   certificate (device):
//!   the one place the local stack differs from AWS's `clientid()`.
//!
//! Each broker runs in its own directory with its configuration, ACL files and log, is started
//! on free loopback ports, waited for until it accepts connections, and killed (and reaped) when
//! the [`Broker`] is dropped. The open-file limit is raised first, for fleets.

use crate::ca::LocalPki;
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Mosquitto binary: `$CHUNKPROV_MOSQUITTO`, else `mosquitto` on `PATH`, else
/// `/usr/sbin/mosquitto` (where Debian puts it, outside a normal user's `PATH`).
pub fn mosquitto_binary() -> Result<PathBuf> {
    find_mosquitto(
        std::env::var_os("CHUNKPROV_MOSQUITTO"),
        std::env::var_os("PATH").unwrap_or_default(),
    )
}

const INSTALL_HINT: &str = "install Mosquitto 2.0: `apt-get install mosquitto mosquitto-clients` \
     (Debian/Ubuntu), or point CHUNKPROV_MOSQUITTO at the binary";

fn find_mosquitto(
    explicit: Option<std::ffi::OsString>,
    path: std::ffi::OsString,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!(
                "CHUNKPROV_MOSQUITTO={} is not a file; {INSTALL_HINT}",
                p.display()
            );
        }
        return Ok(p);
    }
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let p = dir.join("mosquitto");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("mosquitto not found (looked in PATH and /usr/sbin); {INSTALL_HINT}")
}

/// Raises this process's open-file limit to its hard limit (children inherit it). Returns the
/// new soft limit.
pub fn raise_open_file_limit() -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                bail!("setrlimit: {}", std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// Makes a child process die with the thread that starts it (Linux `PR_SET_PDEATHSIG`), so a
/// killed or crashed tool leaves no broker, moto or Lambda process behind even when its
/// destructors never run.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl,
    // getppid and _exit, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the request was in place: nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Topic layout the ACLs are written for.
#[derive(Clone, Debug)]
pub struct Topics {
    /// The topic prefix, e.g. `chunkprov` (may contain `/`).
    pub prefix: String,
    /// The claim client-id prefix, e.g. `claim-`.
    pub claim_prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            prefix: "chunkprov".into(),
            claim_prefix: "claim-".into(),
        }
    }
}

/// One running Mosquitto process.
struct Mosquitto {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mosquitto {
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// Asks the process to reload its configuration and ACL file (SIGHUP). Mosquitto takes the
    /// signal at the top of its next event-loop turn (a signal also ends its wait for network
    /// events), before it reads anything a client sends afterwards.
    fn reload(&self) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("the broker is not running"))?;
        let pid = libc::pid_t::try_from(pid).context("pid")?;
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet
        // reaped (so it cannot have been reused).
        if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
            bail!("SIGHUP to mosquitto: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The local broker: a claim broker and a device broker, each with its service listener.
pub struct Broker {
    claim: Mosquitto,
    device: Mosquitto,
    /// The claim listener (claim certificates, client ids `<claim_prefix>…`).
    pub claim_port: u16,
    /// The claim broker's service listener (the cloud side: requests, pulls, frames).
    pub claim_service_port: u16,
    /// The device listener (device certificates).
    pub device_port: u16,
    /// The device broker's service listener (the cloud side: confirmations and answers).
    pub device_service_port: u16,
    /// The topic layout the ACLs enforce.
    pub topics: Topics,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Whether something listens on 127.0.0.1:`port`. Reads `/proc/net/tcp` (a probe connection
/// would leave a failed TLS handshake in the broker's log); elsewhere, connects.
pub fn listening(port: u16) -> bool {
    match fs::read_to_string("/proc/net/tcp") {
        Ok(table) => {
            let local = format!("0100007F:{port:04X}");
            table.lines().skip(1).any(|l| {
                let mut f = l.split_whitespace();
                // sl, local_address, rem_address, st (0A = LISTEN)
                f.nth(1) == Some(local.as_str()) && f.nth(1) == Some("0A")
            })
        }
        Err(_) => TcpStream::connect(("127.0.0.1", port)).is_ok(),
    }
}

fn check_prefix(t: &Topics) -> Result<()> {
    let bad = |s: &str| s.is_empty() || s.contains(['+', '#', '%', '\0', ' ', '\n']);
    if bad(&t.prefix) || bad(&t.claim_prefix) || t.claim_prefix.contains('/') {
        bail!(
            "topic prefix {:?} / claim prefix {:?} cannot be written into an ACL",
            t.prefix,
            t.claim_prefix
        );
    }
    Ok(())
}

/// The ACL of the claim listener.
pub fn claim_acl(t: &Topics) -> String {
    let p = &t.prefix;
    format!(
        "# claim policy: only the caller's own claim topics (%c = client id)\n\
         pattern write {p}/%c/json\n\
         pattern write {p}/%c/pull\n\
         pattern read {p}/%c/frame\n\
         pattern read {p}/%c/rejected\n"
    )
}

/// Who may act as which thing on the device listener: the certificate's CN (Mosquitto's
/// username under `use_identity_as_username`) and the thing it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceGrant {
    /// The certificate's subject CN.
    pub username: String,
    /// The thing the certificate is attached to.
    pub thing: String,
}

/// Whether `s` can be written into an ACL line as a username or a topic level.
fn acl_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The ACL of the device listener: the device policy for every certificate the control plane
/// says may act as a thing (active, attached to the thing, a policy attached). AWS evaluates
/// `${iot:Connection.Thing.ThingName}` per connection; Mosquitto has no such variable, so the
/// file lists each certificate's name with its thing's topics and is rewritten (and the broker
/// told to reload it) whenever the grants change. Grants whose names cannot be written safely
/// are left out (and so refused).
pub fn device_acl(t: &Topics, grants: &[DeviceGrant]) -> String {
    let p = &t.prefix;
    let mut acl = String::from(
        "# device policy: a certificate reaches only the topics of the thing it is attached to\n",
    );
    for g in grants {
        if !acl_safe(&g.username) || !acl_safe(&g.thing) {
            continue;
        }
        let (u, th) = (&g.username, &g.thing);
        let _ = write!(
            acl,
            "\nuser {u}\n\
             topic write {p}/{th}/confirm\n\
             topic read {p}/{th}/confirm/accepted\n\
             topic read {p}/{th}/rejected\n"
        );
    }
    acl
}

/// A Mosquitto configuration with a device-facing listener (`role_port`, trusting `role_ca`,
/// ACL `role_acl`) and a service listener (trusting the service CA, no ACL: full access).
fn config(
    pki: &LocalPki,
    dir: &Path,
    role_port: u16,
    role_ca: &Path,
    service_port: u16,
    clientid_prefix: Option<&str>,
) -> String {
    let (_, cert, key) = pki.broker_pair();
    let mut c = String::new();
    let _ = writeln!(c, "# generated by chunkprov-devkit");
    let _ = writeln!(c, "per_listener_settings true");
    let _ = writeln!(c, "persistence false");
    let _ = writeln!(c, "log_dest file {}", dir.join("mosquitto.log").display());
    let _ = writeln!(c, "log_type error\nlog_type warning\nlog_type notice");
    let _ = writeln!(c, "connection_messages true");
    // Per client: the rules' subscriber takes a whole fleet's requests at once.
    let _ = writeln!(c, "max_queued_messages 100000");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Started as root, Mosquitto would switch to the `mosquitto` user and lose access to
        // the state directory.
        let _ = writeln!(c, "user root");
    }
    if let Some(p) = clientid_prefix {
        let _ = writeln!(c, "clientid_prefixes {p}");
    }
    for (port, ca, acl) in [
        (role_port, role_ca.to_path_buf(), Some(dir.join("role.acl"))),
        (service_port, pki.ca_path("service"), None),
    ] {
        let _ = writeln!(c, "\nlistener {port} 127.0.0.1");
        let _ = writeln!(c, "cafile {}", ca.display());
        let _ = writeln!(c, "certfile {}", cert.display());
        let _ = writeln!(c, "keyfile {}", key.display());
        let _ = writeln!(c, "require_certificate true");
        let _ = writeln!(c, "use_identity_as_username true");
        let _ = writeln!(c, "allow_anonymous false");
        if let Some(acl) = acl {
            let _ = writeln!(c, "acl_file {}", acl.display());
        }
    }
    c
}

impl Broker {
    /// Writes the configurations under `<state>/broker/` and starts both processes on free
    /// loopback ports; returns once both accept connections.
    pub fn start(pki: &LocalPki, topics: Topics) -> Result<Self> {
        check_prefix(&topics)?;
        let bin = mosquitto_binary()?;
        raise_open_file_limit()?;
        let base = pki.dir().join("broker");
        let ports = [free_port()?, free_port()?, free_port()?, free_port()?];
        let claim = Self::spawn(
            &bin,
            &base.join("claim"),
            &config(
                pki,
                &base.join("claim"),
                ports[0],
                &pki.ca_path("claim"),
                ports[1],
                Some(&topics.claim_prefix),
            ),
            &claim_acl(&topics),
            &[ports[0], ports[1]],
        )?;
        let device = Self::spawn(
            &bin,
            &base.join("device"),
            &config(
                pki,
                &base.join("device"),
                ports[2],
                &pki.ca_path("device"),
                ports[3],
                None,
            ),
            &device_acl(&topics, &[]),
            &[ports[2], ports[3]],
        )?;
        Ok(Self {
            claim,
            device,
            claim_port: ports[0],
            claim_service_port: ports[1],
            device_port: ports[2],
            device_service_port: ports[3],
            topics,
        })
    }

    fn spawn(bin: &Path, dir: &Path, conf: &str, acl: &str, ports: &[u16]) -> Result<Mosquitto> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf_path = dir.join("mosquitto.conf");
        fs::write(&conf_path, conf).with_context(|| format!("writing {}", conf_path.display()))?;
        fs::write(dir.join("role.acl"), acl).context("writing the ACL file")?;
        let _ = fs::remove_file(dir.join("mosquitto.log"));
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut m = Mosquitto {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in ports {
            loop {
                if let Some(Ok(Some(status))) = m.child.as_mut().map(|c| c.try_wait()) {
                    m.child = None;
                    bail!(
                        "mosquitto exited ({status}) at start-up; config {}; log:\n{}",
                        conf_path.display(),
                        m.log()
                    );
                }
                if listening(port) {
                    break;
                }
                if Instant::now() > deadline {
                    let log = m.log();
                    m.stop();
                    bail!("mosquitto did not listen on port {port} within 10 s; log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(m)
    }

    /// The service port through which the cloud side reaches the device that uses `id` as its
    /// client id: the claim broker for claim client ids, the device broker for thing names.
    pub fn service_port_for(&self, id: &str) -> u16 {
        if id.starts_with(&self.topics.claim_prefix) {
            self.claim_service_port
        } else {
            self.device_service_port
        }
    }

    /// Replaces the device listener's grants: rewrites its ACL file and has the device broker
    /// reload it (SIGHUP; Mosquitto re-reads `acl_file` on reload and applies it to connected
    /// clients too). Returns once the signal is sent. The emulator grants a certificate when it
    /// is activated, before the Lambda publishes a single frame of it, so the broker has
    /// reloaded long before the device can connect with it; a confirmation refused all the same
    /// would be retried by the device.
    pub fn set_device_grants(&self, grants: &[DeviceGrant]) -> Result<()> {
        let mut sorted = grants.to_vec();
        sorted.sort();
        sorted.dedup();
        let acl = device_acl(&self.topics, &sorted);
        let path = self.device.dir.join("role.acl");
        let tmp = self.device.dir.join("role.acl.new");
        fs::write(&tmp, acl).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        self.device.reload()
    }

    /// Both brokers' logs, for diagnostics.
    pub fn logs(&self) -> String {
        format!(
            "--- claim broker ---\n{}--- device broker ---\n{}",
            self.claim.log(),
            self.device.log()
        )
    }

    /// Stops both processes (also done on drop).
    pub fn stop(&mut self) {
        self.claim.stop();
        self.device.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_mosquitto_is_named_with_the_install_command() {
        let e = find_mosquitto(Some("/nonexistent/mosquitto".into()), "".into()).unwrap_err();
        assert!(format!("{e}").contains("apt-get install mosquitto"), "{e}");
        let dir =
            std::env::temp_dir().join(format!("chunkprov-devkit-nomosq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Found on PATH (or in /usr/sbin, where Debian installs it) ...
        let fake = dir.join("mosquitto");
        std::fs::write(&fake, "").unwrap();
        assert_eq!(
            find_mosquitto(None, dir.clone().into_os_string()).unwrap(),
            fake
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn acls_bind_topics_to_the_client_id_or_the_certificate_name() {
        let t = Topics::default();
        let claim = claim_acl(&t);
        for line in [
            "pattern write chunkprov/%c/json",
            "pattern write chunkprov/%c/pull",
            "pattern read chunkprov/%c/frame",
            "pattern read chunkprov/%c/rejected",
        ] {
            assert!(claim.lines().any(|l| l == line), "{line}");
        }
        let grant = |u: &str, th: &str| DeviceGrant {
            username: u.into(),
            thing: th.into(),
        };
        let device = device_acl(
            &t,
            &[
                grant("352656100000001", "dev-352656100000001"),
                grant("bad name", "dev-x"),
            ],
        );
        let lines: Vec<&str> = device.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "",
                "user 352656100000001",
                "topic write chunkprov/dev-352656100000001/confirm",
                "topic read chunkprov/dev-352656100000001/confirm/accepted",
                "topic read chunkprov/dev-352656100000001/rejected",
            ]
        );
        assert!(!device.contains('%'));
        let bad = Topics {
            prefix: "a/#".into(),
            claim_prefix: "claim-".into(),
        };
        assert!(check_prefix(&bad).is_err());
    }
}
