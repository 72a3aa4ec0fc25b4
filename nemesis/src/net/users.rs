//! System users `jtnode1..n`, one per node, so iptables can match a node's packets by owner.

use nix::unistd::User;

use super::NetError;

/// Prefix of the per-node user names: node `i` (1-based) runs as `jtnode{i}`.
pub const USER_PREFIX: &str = "jtnode";

/// Returns the uids of users `jtnode1..=n`, creating the missing ones (root only) with
/// `useradd --system --no-create-home --shell /usr/sbin/nologin`.
///
/// Only targets that do not bind their outgoing sockets (etcd) need this: run node `i` under
/// `uids[i - 1]` (for example with `CommandExt::uid`) and set [`super::NodeNet::uid`]. The users
/// are left in place for the next run; they own no files and cannot log in. Their data
/// directories must be writable by them (chown them to the uid).
pub fn ensure_uids(n: usize) -> anyhow::Result<Vec<u32>> {
    (1..=n)
        .map(|i| Ok(ensure_user(&format!("{USER_PREFIX}{i}"))?))
        .collect()
}

fn lookup(name: &str) -> Result<Option<u32>, NetError> {
    User::from_name(name)
        .map(|u| u.map(|u| u.uid.as_raw()))
        .map_err(|e| NetError::Io {
            what: format!("looking up user {name}"),
            source: e.into(),
        })
}

fn ensure_user(name: &str) -> Result<u32, NetError> {
    let args = [
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ];
    // useradd fails when another process holds the lock on /etc/passwd (or just created the
    // same user): look again and retry a few times before giving up.
    let mut last = None;
    for _ in 0..10 {
        if let Some(uid) = lookup(name)? {
            return Ok(uid);
        }
        if let Err(e) = super::run_command("useradd", &args) {
            last = Some(e);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    Err(last.unwrap_or_else(|| NetError::Command {
        command: format!("useradd {}", args.join(" ")),
        detail: "the user is still missing after it was created".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_users_are_looked_up_not_created() {
        assert_eq!(lookup("root").unwrap(), Some(0));
        assert_eq!(ensure_user("root").unwrap(), 0);
        assert_eq!(lookup("jtnode-no-such-user").unwrap(), None);
    }

    #[test]
    fn node_users_exist_after_ensure_uids() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping node_users_exist_after_ensure_uids: not root");
            return;
        }
        let uids = ensure_uids(2).unwrap();
        assert_eq!(uids.len(), 2);
        assert_ne!(uids[0], uids[1]);
        assert_eq!(lookup("jtnode2").unwrap(), Some(uids[1]));
        assert_eq!(
            ensure_uids(2).unwrap(),
            uids,
            "second call must find the same users"
        );
    }
}
