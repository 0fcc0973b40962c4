//! What a pre-copied volume still lacks once its service has stopped: the pure part of a
//! stateful move with pre-copy (`volume::moves`).
//!
//! A move first copies the volume while the service runs (the pre-copy), then stops the
//! service and sends only what changed since. "What changed" comes from two listings taken at
//! rest — the source's and the target's — made on the machines by `find` and `stat` (the
//! service's own image runs them; see [`LIST`]), so finding the delta reads no file content.
//! A file counts as changed when its type, size, mtime, mode or owner differ, or when its
//! mtime is not older than the pre-copy's start (a write in the same second as the pre-copy
//! read it could leave size and mtime equal): rsync's quick check, made safe for the
//! pre-copy's own second.

use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet};

/// Lists the volume at rest: the machine's clock (seconds) on the first line, then one line a
/// path: `type|size|mtime|ctime|mode|uid|gid|./path` (`.`: the volume's root, whose mode and
/// owner matter when it is a service's data directory). Portable between GNU and busybox.
/// Exit 3: a tool is missing; exit 4: a name holds a newline (its line could pass for another
/// path's), so the caller copies the volume whole instead.
pub const LIST: &str = concat!(
    "command -v find >/dev/null && command -v stat >/dev/null && command -v sha256sum >/dev/null && command -v xargs >/dev/null || exit 3; ",
    "cd /hoist-volume && if find . -name '*\n*' | grep -q .; then exit 4; fi; ",
    "date +%s && find . -exec stat -c '%F|%s|%Y|%Z|%a|%u|%g|%n' {} +"
);

/// The sha256 of every regular file of the volume (`sha256sum` lines).
pub const HASH_ALL: &str = "cd /hoist-volume && find . -type f -exec sha256sum {} +";

/// [`LIST`], an empty line, then [`HASH_LISTED`]: the check after the changes, in one run.
pub const LIST_THEN_HASH_LISTED: &str = concat!(
    "command -v find >/dev/null && command -v stat >/dev/null && command -v sha256sum >/dev/null && command -v xargs >/dev/null || exit 3; ",
    "cd /hoist-volume && if find . -name '*\n*' | grep -q .; then exit 4; fi; ",
    "date +%s && find . -exec stat -c '%F|%s|%Y|%Z|%a|%u|%g|%n' {} + && echo && xargs -0 -r sha256sum < /hoist-in"
);

/// The sha256 of the files named in /hoist-in (NUL-separated, `./a/b`).
pub const HASH_LISTED: &str = "cd /hoist-volume && xargs -0 -r sha256sum < /hoist-in";

/// Removes the paths named in /hoist-in (NUL-separated, `./a/b`) from the volume.
pub const REMOVE_LISTED: &str = "cd /hoist-volume && xargs -0 -r rm -rf -- < /hoist-in";

/// The kind of a listed path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    /// Sockets, FIFOs, devices: the engine's archive does not carry sockets, so these are
    /// neither copied on their own nor compared.
    Other,
}

/// One path of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    /// The inode's change time: set by the kernel on every write, rename, chmod or chown, and
    /// never by a program (unlike the mtime, which `mv`, `cp -p`, `touch -r`, `tar x` keep old).
    pub ctime: i64,
    /// Permission bits, octal as `stat` prints them.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
}

/// A volume's paths at one moment, and the machine's clock then.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub clock: i64,
    pub paths: BTreeMap<String, Entry>,
}

/// Reads [`LIST`]'s output. A line it cannot read (a file name with a newline) is an error:
/// the caller then copies the whole volume instead.
pub fn parse_listing(text: &str) -> Result<Listing> {
    let mut lines = text.lines();
    let Some(clock) = lines.next().and_then(|l| l.trim().parse::<i64>().ok()) else {
        bail!("the listing does not start with the machine's clock");
    };
    let mut paths = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.splitn(8, '|').collect();
        let [kind, size, mtime, ctime, mode, uid, gid, path] = f[..] else {
            bail!("cannot read the listing line {line:?}");
        };
        if !(path == "." || path.starts_with("./")) {
            bail!("cannot read the listing line {line:?}");
        }
        let kind = match kind {
            k if k.starts_with("regular") => Kind::File,
            "directory" => Kind::Dir,
            "symbolic link" => Kind::Link,
            _ => Kind::Other,
        };
        let num = |v: &str| -> Result<i64> {
            v.parse::<i64>()
                .map_err(|_| anyhow::anyhow!("cannot read the listing line {line:?}"))
        };
        let entry = Entry {
            kind,
            size: num(size)? as u64,
            mtime: num(mtime)?,
            ctime: num(ctime)?,
            mode: mode.to_string(),
            uid: num(uid)? as u32,
            gid: num(gid)? as u32,
        };
        // Twice the same path: a line forged by a name (never trusted, whatever it says).
        if paths.insert(path.to_string(), entry).is_some() {
            bail!("the listing names {path:?} twice");
        }
    }
    Ok(Listing { clock, paths })
}

/// Reads `sha256sum` output into path → digest. Names `sha256sum` had to escape (a backslash
/// or a newline in them) are an error, as in [`parse_listing`].
pub fn parse_sums(text: &str) -> Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let Some((sum, path)) = line.split_once("  ") else {
            bail!("cannot read the checksum line {line:?}");
        };
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) || sum.starts_with('\\') {
            bail!("cannot read the checksum line {line:?}");
        }
        if sums
            .insert(path.to_string(), sum.to_ascii_lowercase())
            .is_some()
        {
            bail!("the checksums name {path:?} twice");
        }
    }
    Ok(sums)
}

/// What the target needs, in this order: paths to remove, directories whose mode or owner to
/// set, paths to copy (a new directory whole, with everything under it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub remove: Vec<String>,
    pub dirs: Vec<(String, Entry)>,
    pub copy: Vec<String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.dirs.is_empty() && self.copy.is_empty()
    }

    /// The bytes the copies carry, by the source's listing (a new directory's whole tree).
    pub fn bytes(&self, source: &Listing) -> u64 {
        self.carried(source).map(|(_, e)| e.size).sum()
    }

    /// The regular files the copies carry, for their checksums.
    pub fn files(&self, source: &Listing) -> Vec<String> {
        self.carried(source).map(|(p, _)| p.clone()).collect()
    }

    fn carried<'a>(&'a self, source: &'a Listing) -> impl Iterator<Item = (&'a String, &'a Entry)> {
        let tops: BTreeSet<&str> = self.copy.iter().map(String::as_str).collect();
        source
            .paths
            .iter()
            .filter(move |(p, e)| e.kind == Kind::File && within_any(p, &tops))
    }
}

/// Whether `path` is one of `tops` or under one: its ancestors looked up, not every top
/// compared (a listing has a million paths at times).
fn within_any(path: &str, tops: &BTreeSet<&str>) -> bool {
    if tops.contains(path) {
        return true;
    }
    path.match_indices('/')
        .any(|(i, _)| i > 1 && tops.contains(&path[..i]))
}

#[cfg(test)]
fn within(path: &str, top: &str) -> bool {
    within_any(path, &BTreeSet::from([top]))
}

/// The delta from `target` (the pre-copy, at rest) to `source` (at rest). `since`: the source
/// machine's clock when the pre-copy started.
pub fn delta(source: &Listing, target: &Listing, since: i64) -> Delta {
    let mut d = Delta::default();
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    // Gone from the source, or of another kind there: removed first (the top-most only).
    for (path, t) in &target.paths {
        if within_any(path, &removed) {
            continue;
        }
        let gone = match source.paths.get(path) {
            None => true,
            Some(s) => s.kind != t.kind,
        };
        if gone {
            removed.insert(path);
            d.remove.push(path.clone());
        }
    }
    // A listing's order puts a directory before what it holds.
    let mut copied: BTreeSet<&str> = BTreeSet::new();
    for (path, s) in &source.paths {
        if s.kind == Kind::Other || within_any(path, &copied) {
            continue;
        }
        let old = target.paths.get(path).filter(|t| t.kind == s.kind);
        match (s.kind, old) {
            (_, None) => {
                copied.insert(path);
                d.copy.push(path.clone());
            }
            (Kind::Dir, Some(t)) => {
                if (&t.mode, t.uid, t.gid) != (&s.mode, s.uid, s.gid) {
                    d.dirs.push((path.clone(), s.clone()));
                }
            }
            (_, Some(t)) => {
                // Untouched since before the pre-copy began (its ctime says so: no write,
                // rename, chmod or chown since), and the pre-copy's copy agrees.
                let same = s.ctime < since
                    && t.size == s.size
                    && t.mode == s.mode
                    && (t.uid, t.gid) == (s.uid, s.gid)
                    // A link's own mtime is not carried by every engine's archive.
                    && (s.kind == Kind::Link || t.mtime == s.mtime);
                if !same {
                    copied.insert(path);
                    d.copy.push(path.clone());
                }
            }
        }
    }
    d
}

/// Whether `target` now holds the same tree as `source`: the same paths of the same kinds,
/// modes and owners, and files of the same sizes and mtimes. Returns what differs, a few at
/// most, when not.
pub fn same_tree(source: &Listing, target: &Listing) -> std::result::Result<(), String> {
    let mut diffs = Vec::new();
    let kept = |l: &Listing| -> BTreeMap<String, Entry> {
        l.paths
            .iter()
            .filter(|(_, e)| e.kind != Kind::Other)
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    };
    let (s, t) = (kept(source), kept(target));
    for (path, a) in &s {
        match t.get(path) {
            None => diffs.push(format!("{path} is missing")),
            Some(b) => {
                let same = a.kind == b.kind
                    && a.mode == b.mode
                    && (a.uid, a.gid) == (b.uid, b.gid)
                    && (a.kind != Kind::File || (a.size, a.mtime) == (b.size, b.mtime));
                if !same {
                    diffs.push(format!("{path} differs ({a:?} there, {b:?} here)"));
                }
            }
        }
    }
    for path in t.keys().filter(|p| !s.contains_key(*p)) {
        diffs.push(format!("{path} should not be there"));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diffs.truncate(3);
    Err(format!(
        "{n} difference(s), among them: {}",
        diffs.join("; ")
    ))
}

/// NUL-separated paths, the input [`HASH_LISTED`] and [`REMOVE_LISTED`] read.
pub fn nul_list(paths: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(clock: i64, lines: &[&str]) -> Listing {
        let text = std::iter::once(clock.to_string())
            .chain(lines.iter().map(|l| l.to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        parse_listing(&text).unwrap()
    }

    #[test]
    fn reads_gnu_and_busybox_listings() {
        let l = listing(
            1000,
            &[
                "directory|4096|900|900|755|0|0|./d",
                "regular file|3|900|900|644|999|999|./d/a|b",
                "regular empty file|0|900|900|600|0|0|./e",
                "symbolic link|1|900|900|777|0|0|./l",
                "socket|0|900|900|755|0|0|./s",
            ],
        );
        assert_eq!(l.clock, 1000);
        assert_eq!(l.paths["./d/a|b"].kind, Kind::File);
        assert_eq!(l.paths["./d/a|b"].uid, 999);
        assert_eq!(l.paths["./e"].kind, Kind::File);
        assert_eq!(l.paths["./l"].kind, Kind::Link);
        assert_eq!(l.paths["./s"].kind, Kind::Other);
        // A name with a newline breaks a line in two: refused, never misread.
        assert!(parse_listing("1000\nregular file|3|900|900|644|0|0|./a\nb").is_err());
        assert!(parse_listing("regular file|3|900|900|644|0|0|./a").is_err());
    }

    #[test]
    fn reads_checksums_and_refuses_escaped_names() {
        let sum = "a".repeat(64);
        let s = parse_sums(&format!("{sum}  ./x y\n")).unwrap();
        assert_eq!(s["./x y"], sum);
        assert!(parse_sums(&format!("\\{sum}  ./x\\ny\n")).is_err());
        assert!(parse_sums("nothing\n").is_err());
    }

    #[test]
    fn unchanged_files_are_not_sent_again() {
        let src = listing(
            2000,
            &[
                "regular file|3|900|900|644|0|0|./a",
                "directory|4096|900|900|755|0|0|./d",
            ],
        );
        let dst = listing(
            2000,
            &[
                "regular file|3|900|900|644|0|0|./a",
                "directory|12|950|950|755|0|0|./d",
            ],
        );
        assert!(delta(&src, &dst, 1000).is_empty());
        assert!(same_tree(&src, &dst).is_ok());
    }

    #[test]
    fn changed_new_and_gone_paths() {
        let src = listing(
            2000,
            &[
                "regular file|4|1500|1500|644|0|0|./grown",
                "regular file|3|900|900|600|0|0|./chmodded",
                "directory|4096|1500|1500|755|0|0|./new",
                "regular file|1|1500|1500|644|0|0|./new/x",
                "directory|4096|900|900|700|0|0|./locked",
                "regular file|1|900|900|644|0|0|./locked/keep",
                "regular file|2|900|900|644|0|0|./was-dir",
            ],
        );
        let dst = listing(
            2000,
            &[
                "regular file|3|900|900|644|0|0|./grown",
                "regular file|3|900|900|644|0|0|./chmodded",
                "directory|4096|900|900|755|0|0|./locked",
                "regular file|1|900|900|644|0|0|./locked/keep",
                "directory|4096|900|900|755|0|0|./gone",
                "regular file|1|900|900|644|0|0|./gone/y",
                "directory|4096|900|900|755|0|0|./was-dir",
                "regular file|1|900|900|644|0|0|./was-dir/z",
            ],
        );
        let d = delta(&src, &dst, 1000);
        assert_eq!(d.remove, ["./gone", "./was-dir"]);
        assert_eq!(d.dirs.len(), 1);
        assert_eq!(d.dirs[0].0, "./locked");
        // The new directory is copied whole, not path by path.
        assert_eq!(d.copy, ["./chmodded", "./grown", "./new", "./was-dir"]);
        assert_eq!(d.bytes(&src), 3 + 4 + 1 + 2);
        assert_eq!(
            d.files(&src),
            ["./chmodded", "./grown", "./new/x", "./was-dir"]
        );
        let diff = same_tree(&src, &dst).unwrap_err();
        assert!(diff.contains("difference"), "{diff}");
    }

    #[test]
    fn a_file_written_during_the_pre_copy_is_sent_even_when_it_looks_the_same() {
        // Same size and mtime as the pre-copy saw, but written in the second the pre-copy
        // started: its content may have changed after the pre-copy read it.
        let src = listing(
            2000,
            &[
                "regular file|3|1000|1000|644|0|0|./a",
                "regular file|3|999|999|644|0|0|./b",
            ],
        );
        let dst = src.clone();
        assert_eq!(delta(&src, &dst, 1000).copy, ["./a"]);
    }

    #[test]
    fn the_volume_root_keeps_its_mode_and_owner() {
        // A service's data directory is often the volume's root (postgres: 0700, uid 999).
        let src = listing(2000, &["directory|4096|900|900|700|999|999|."]);
        let dst = listing(2000, &["directory|4096|900|900|755|0|0|."]);
        let d = delta(&src, &dst, 1000);
        assert_eq!(d.dirs.len(), 1);
        assert_eq!(d.dirs[0].0, ".");
        assert!(d.remove.is_empty() && d.copy.is_empty());
        assert!(same_tree(&src, &dst).is_err());
    }

    #[test]
    fn what_changed_is_told_by_the_ctime_not_the_mtime_a_program_can_set() {
        // Replaced during the pre-copy by `mv` of a file of the same size whose mtime is old
        // (cp -p, tar x, touch -r): only its ctime tells.
        let src = listing(2000, &["regular file|100|900|1500|644|0|0|./state.json"]);
        let dst = listing(2000, &["regular file|100|900|900|644|0|0|./state.json"]);
        assert_eq!(delta(&src, &dst, 1000).copy, ["./state.json"]);
        // A symlink pointed elsewhere with a target name of the same length.
        let src = listing(2000, &["symbolic link|22|1500|1500|777|0|0|./live"]);
        let dst = listing(2000, &["symbolic link|22|900|900|777|0|0|./live"]);
        assert_eq!(delta(&src, &dst, 1000).copy, ["./live"]);
        // Untouched since before the pre-copy: not sent.
        let src = listing(2000, &["symbolic link|22|900|900|777|0|0|./live"]);
        assert!(delta(&src, &dst, 1000).is_empty());
    }

    #[test]
    fn a_name_cannot_forge_a_line() {
        // A directory named "z\nregular file|…|." makes find print a line for a path that
        // also exists for real: the listing is refused, never half-believed.
        assert!(
            parse_listing(
                "1000\nregular file|5|100|100|644|0|0|./a\nregular file|5|100|100|644|0|0|./a"
            )
            .is_err()
        );
        let sum = "b".repeat(64);
        assert!(parse_sums(&format!("{sum}  ./a\n{sum}  ./a\n")).is_err());
        // And the scripts refuse a volume with a newline in a name before listing it.
        assert!(LIST.contains("-name '*\n*'"));
        assert!(LIST_THEN_HASH_LISTED.contains("-name '*\n*'"));
    }

    #[test]
    fn a_big_delta_is_found_without_comparing_every_path_to_every_change() {
        // 60,000 changed files in 300 directories, 300 of them new: quadratic work here
        // would take minutes with the service stopped.
        let mut src = Listing {
            clock: 2000,
            paths: BTreeMap::new(),
        };
        let mut dst = src.clone();
        let file = |mtime: i64| Entry {
            kind: Kind::File,
            size: 1,
            mtime,
            ctime: mtime,
            mode: "644".into(),
            uid: 0,
            gid: 0,
        };
        let dir = Entry {
            kind: Kind::Dir,
            size: 4096,
            ..file(900)
        };
        for d in 0..600 {
            src.paths.insert(format!("./d{d}"), dir.clone());
            if d < 300 {
                dst.paths.insert(format!("./d{d}"), dir.clone());
            }
            for f in 0..100 {
                src.paths.insert(format!("./d{d}/f{f}"), file(1500));
                if d < 300 {
                    dst.paths.insert(format!("./d{d}/f{f}"), file(900));
                }
            }
        }
        let d = delta(&src, &dst, 1000);
        assert_eq!(d.copy.len(), 300 * 100 + 300);
        assert_eq!(d.files(&src).len(), 60_000);
        assert_eq!(d.bytes(&src), 60_000);
    }

    #[test]
    fn within_means_the_path_or_below() {
        assert!(within("./a/b", "./a"));
        assert!(within("./a", "./a"));
        assert!(!within("./ab", "./a"));
    }

    #[test]
    fn nul_lists_need_no_quoting() {
        assert_eq!(
            nul_list(&["./a b".into(), "./$(x)".into()]),
            b"./a b\0./$(x)\0".to_vec()
        );
    }
}
