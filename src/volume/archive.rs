//! The backup file: one volume's files, compressed and checksummed, in one plain file.
//!
//! A backup must be refused whole when any byte of it changed, before anything on a machine is
//! replaced, and it must stay readable without hoist. So the file is an ordinary (uncompressed)
//! tar archive holding two members:
//!
//! - `volume.tar.gz`: the volume's files as the engine's archive endpoint gives them (a tar
//!   whose entries start with `hoist-volume/`), gzip-compressed;
//! - `manifest.json`: what was backed up (project, volume, service, machine, when, how it was
//!   kept consistent) and the sha256 and size of both the compressed member and the tar inside.
//!
//! `tar xf backup.hoist && tar xzf volume.tar.gz` gets the files back by hand. The data member
//! comes first so the file can be written in one pass: its header is written last, into the
//! place kept for it, once its size is known. The file is written as `FILE.partial` and renamed
//! when complete, so an interrupted backup never leaves a file that looks whole.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The member holding the compressed files.
pub const DATA: &str = "volume.tar.gz";
/// The member holding the [`Manifest`].
pub const MANIFEST: &str = "manifest.json";
/// What the manifest's `format` says.
pub const FORMAT: &str = "hoist-volume-backup";
/// The directory every entry of the inner tar starts with (the volume's root).
pub const ROOT: &str = "hoist-volume";

const BLOCK: u64 = 512;

/// What a backup holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub project: String,
    /// The engine's volume name (`shop_data`).
    pub volume: String,
    /// The service whose replicas used it on that machine, if any.
    pub service: Option<String>,
    /// The machine it was read from (inventory name).
    pub machine: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// How the copy was kept consistent, in words (`db.1 stopped for the copy`).
    pub consistency: String,
    /// `gzip`.
    pub compression: String,
    /// The inner tar's top directory: the volume's root.
    pub root: String,
    /// Size and sha256 of the compressed member, as stored in the file.
    pub data_bytes: u64,
    pub data_sha256: String,
    /// Size and sha256 of the tar inside it (what the engine gave and will be given back).
    pub tar_bytes: u64,
    pub tar_sha256: String,
    /// The hoist that wrote it.
    pub hoist: String,
}

/// What the caller knows of a backup before its data is read.
pub struct About {
    pub project: String,
    pub volume: String,
    pub service: Option<String>,
    pub machine: String,
    pub consistency: String,
}

/// A `Write` that counts and hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn padding(n: u64) -> u64 {
    (BLOCK - n % BLOCK) % BLOCK
}

fn header(path: &str, size: u64, mtime: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A backup being written; feed it the volume's tar stream, then [`Writer::finish`].
pub struct Writer {
    target: PathBuf,
    partial: PathBuf,
    gz: flate2::write::GzEncoder<Hashing<BufWriter<File>>>,
    tar_hash: Sha256,
    tar_bytes: u64,
}

impl Writer {
    /// Starts `target` (as `target.partial` until finished). Refuses a target that exists.
    pub fn create(target: &Path) -> Result<Writer> {
        if target.exists() {
            bail!(
                "{} exists; choose another file or remove it first",
                target.display()
            );
        }
        let mut partial = target.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let mut file = File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        // The data member's header goes here once its size is known.
        file.write_all(&[0u8; BLOCK as usize])
            .with_context(|| format!("writing {}", partial.display()))?;
        let sink = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        Ok(Writer {
            target: target.to_path_buf(),
            partial,
            gz: flate2::write::GzEncoder::new(sink, flate2::Compression::new(3)),
            tar_hash: Sha256::new(),
            tar_bytes: 0,
        })
    }

    /// The next bytes of the volume's tar stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.tar_hash.update(chunk);
        self.tar_bytes += chunk.len() as u64;
        self.gz
            .write_all(chunk)
            .with_context(|| format!("writing {}", self.partial.display()))
    }

    /// How many bytes of the tar stream were fed so far.
    pub fn fed(&self) -> u64 {
        self.tar_bytes
    }

    /// Writes the manifest, fills in the data member's header, syncs and renames the file
    /// into place. Returns the manifest written.
    pub fn finish(self, about: About) -> Result<Manifest> {
        let Writer {
            target,
            partial,
            gz,
            tar_hash,
            tar_bytes,
        } = self;
        let ctx = || format!("writing {}", partial.display());
        let sink = gz.finish().with_context(ctx)?;
        let data_bytes = sink.bytes;
        let data_sha256 = hex(&sink.hash.finalize());
        let mut file = sink
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(ctx)?;
        let manifest = Manifest {
            format: FORMAT.into(),
            version: 1,
            project: about.project,
            volume: about.volume,
            service: about.service,
            machine: about.machine,
            created: crate::apply::time::rfc3339(now()),
            consistency: about.consistency,
            compression: "gzip".into(),
            root: ROOT.into(),
            data_bytes,
            data_sha256,
            tar_bytes,
            tar_sha256: hex(&tar_hash.finalize()),
            hoist: env!("HOIST_VERSION").into(),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("plain data serializes");
        let mtime = now();
        file.write_all(&vec![0u8; padding(data_bytes) as usize])
            .with_context(ctx)?;
        file.write_all(header(MANIFEST, json.len() as u64, mtime)?.as_bytes())
            .with_context(ctx)?;
        file.write_all(&json).with_context(ctx)?;
        file.write_all(&vec![0u8; padding(json.len() as u64) as usize])
            .with_context(ctx)?;
        file.write_all(&[0u8; 2 * BLOCK as usize])
            .with_context(ctx)?;
        file.seek(SeekFrom::Start(0)).with_context(ctx)?;
        file.write_all(header(DATA, data_bytes, mtime)?.as_bytes())
            .with_context(ctx)?;
        file.sync_all().with_context(ctx)?;
        drop(file);
        std::fs::rename(&partial, &target)
            .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
        Ok(manifest)
    }

    /// Removes the unfinished file (after a failed copy).
    pub fn abandon(self) {
        let partial = self.partial.clone();
        drop(self);
        let _ = std::fs::remove_file(partial);
    }
}

/// A backup file whose checksum was verified: its manifest and where its data lies.
#[derive(Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub manifest: Manifest,
    offset: u64,
}

fn not_a_backup(path: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: not a hoist volume backup ({why}); make one with `hoist volumes backup`",
        path.display()
    )
}

fn read_header(file: &mut File, path: &Path, at: u64) -> Result<(String, u64)> {
    let mut block = [0u8; BLOCK as usize];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut block)
        .map_err(|_| not_a_backup(path, "the file ends early"))?;
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&block);
    let sum = h.cksum().map_err(|e| not_a_backup(path, e))?;
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    if sum != computed {
        bail!(not_a_backup(path, "a member's header is damaged"));
    }
    let name = h
        .path()
        .map_err(|e| not_a_backup(path, e))?
        .to_string_lossy()
        .into_owned();
    let size = h.entry_size().map_err(|e| not_a_backup(path, e))?;
    Ok((name, size))
}

/// Reads the manifest of `path` and checks the data's size and sha256 against it, reading the
/// whole file once. Nothing else is trusted until this passes.
pub fn verify(path: &Path) -> Result<Verified> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata()?.len();
    let (name, data_bytes) = read_header(&mut file, path, 0)?;
    if name != DATA {
        bail!(not_a_backup(
            path,
            format!("its first member is {name:?}, not {DATA}")
        ));
    }
    let manifest_at = BLOCK + data_bytes + padding(data_bytes);
    if manifest_at + BLOCK > len {
        bail!(
            "{}: truncated: {DATA} should hold {data_bytes} bytes but the file has {len}; nothing was changed",
            path.display()
        );
    }
    let (name, size) = read_header(&mut file, path, manifest_at)?;
    if name != MANIFEST || size > 1 << 20 {
        bail!(not_a_backup(path, format!("no {MANIFEST} after {DATA}")));
    }
    let mut json = vec![0u8; size as usize];
    file.read_exact(&mut json)
        .map_err(|_| not_a_backup(path, "the manifest ends early"))?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| not_a_backup(path, format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        bail!(not_a_backup(path, format!("format {:?}", manifest.format)));
    }
    if manifest.version != 1 {
        bail!(
            "{}: backup format version {} is newer than this hoist reads (1); use a newer hoist",
            path.display(),
            manifest.version
        );
    }
    if manifest.compression != "gzip" || manifest.root != ROOT {
        bail!(not_a_backup(
            path,
            format!(
                "compression {:?}, root {:?}",
                manifest.compression, manifest.root
            )
        ));
    }
    if manifest.data_bytes != data_bytes {
        bail!(
            "{}: corrupted: {DATA} holds {data_bytes} bytes, the manifest says {}; nothing was changed",
            path.display(),
            manifest.data_bytes
        );
    }
    file.seek(SeekFrom::Start(BLOCK))?;
    let mut hash = Sha256::new();
    let copied = std::io::copy(&mut (&mut file).take(data_bytes), &mut HashSink(&mut hash))
        .with_context(|| format!("reading {}", path.display()))?;
    let sha = hex(&hash.finalize());
    if copied != data_bytes || sha != manifest.data_sha256 {
        bail!(
            "{}: corrupted: the data's sha256 is {sha}, the manifest says {}; nothing was changed",
            path.display(),
            manifest.data_sha256
        );
    }
    Ok(Verified {
        path: path.to_path_buf(),
        manifest,
        offset: BLOCK,
    })
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The volume's tar stream of a verified backup, decompressed, hashed as it is read; call
/// [`TarReader::check`] at the end to compare with the manifest.
pub struct TarReader {
    gz: flate2::read::GzDecoder<std::io::Take<std::io::BufReader<File>>>,
    hash: Sha256,
    bytes: u64,
    want: (u64, String),
}

impl Verified {
    pub fn tar(&self) -> Result<TarReader> {
        let mut file = File::open(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        file.seek(SeekFrom::Start(self.offset))?;
        let raw = std::io::BufReader::with_capacity(1 << 20, file).take(self.manifest.data_bytes);
        Ok(TarReader {
            gz: flate2::read::GzDecoder::new(raw),
            hash: Sha256::new(),
            bytes: 0,
            want: (self.manifest.tar_bytes, self.manifest.tar_sha256.clone()),
        })
    }
}

impl Read for TarReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.gz.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl TarReader {
    /// Whether what was read is the tar the manifest describes.
    pub fn check(self) -> Result<()> {
        let sha = hex(&self.hash.finalize());
        if self.bytes != self.want.0 || sha != self.want.1 {
            bail!(
                "the restored stream is {} bytes with sha256 {sha}; the manifest says {} bytes, {}",
                self.bytes,
                self.want.0,
                self.want.1
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about() -> About {
        About {
            project: "shop".into(),
            volume: "shop_data".into(),
            service: Some("db".into()),
            machine: "m2".into(),
            consistency: "db.1 stopped for the copy".into(),
        }
    }

    /// A small volume tar as the engine would send it.
    fn volume_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path("hoist-volume/").unwrap();
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        let body = b"records\n".repeat(1000);
        let mut h = tar::Header::new_gnu();
        h.set_path("hoist-volume/log").unwrap();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &body[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn write(dir: &Path, data: &[u8]) -> PathBuf {
        let path = dir.join("b.hoist");
        let mut w = Writer::create(&path).unwrap();
        for chunk in data.chunks(1000) {
            w.feed(chunk).unwrap();
        }
        w.finish(about()).unwrap();
        path
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hoist-archive-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_backup_reads_back_as_written_and_is_a_plain_tar() {
        let dir = tempdir("roundtrip");
        let data = volume_tar();
        let path = write(&dir, &data);
        assert!(!dir.join("b.hoist.partial").exists());
        let v = verify(&path).unwrap();
        assert_eq!(v.manifest.volume, "shop_data");
        assert_eq!(v.manifest.tar_bytes, data.len() as u64);
        let mut back = Vec::new();
        let mut r = v.tar().unwrap();
        r.read_to_end(&mut back).unwrap();
        r.check().unwrap();
        assert_eq!(back, data);
        // Any tar reader lists its two members, data first.
        let mut outer = tar::Archive::new(File::open(&path).unwrap());
        let names: Vec<String> = outer
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [DATA, MANIFEST]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn any_changed_byte_is_refused_before_use() {
        let dir = tempdir("corrupt");
        let path = write(&dir, &volume_tar());
        let good = std::fs::read(&path).unwrap();
        // Flip one byte inside the compressed data.
        let mut bad = good.clone();
        bad[BLOCK as usize + 40] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("corrupted: the data's sha256"), "{e}");
        assert!(e.contains("nothing was changed"), "{e}");
        // Cut short.
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(
            e.contains("truncated") || e.contains("not a hoist volume backup"),
            "{e}"
        );
        // Not a backup at all.
        std::fs::write(&path, b"hello").unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("not a hoist volume backup"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempdir("exists");
        let path = dir.join("b.hoist");
        std::fs::write(&path, b"keep me").unwrap();
        let e = Writer::create(&path).err().unwrap().to_string();
        assert!(e.contains("exists"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
