//! `pki issue --count N`: many leaves, each with a fresh key, [`BATCH`] to a transaction and
//! one folder sync per batch, names checked (and refused as a whole) before anything is signed.

use std::path::{Path, PathBuf};

use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::issuer::Issuer;
use crate::key::{self};
use crate::leaf::Leaf;
use crate::store::Db;
use x509::cert::key_id;
use x509::key::public_of;

use crate::folder::{Folder, Issued};

/// Certificates issued per transaction in a batch.
pub const BATCH: usize = 256;

impl Folder {
    /// Issues every leaf of `leaves` with a fresh key, new names only, [`BATCH`] to a
    /// transaction; `progress(done)` after each batch. Names are checked (and refused as a
    /// whole) before anything is signed.
    pub fn issue_many(
        &self,
        ca: &Issuer,
        leaves: &[Leaf],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Issued>> {
        let mut seen = std::collections::HashSet::new();
        let mut paths = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            let (cert, key) = self.leaf_paths(leaf.profile.role(), &leaf.name)?;
            if !seen.insert((leaf.profile, leaf.name.to_ascii_lowercase())) {
                return Err(Error::Refused(format!(
                    "the name {} is given twice",
                    leaf.name
                )));
            }
            for (what, p) in [("certificate", &cert), ("private key", &key)] {
                if files::exists(p) {
                    return Err(x509::Error::Exists {
                        what,
                        path: p.clone(),
                    }
                    .into());
                }
            }
            paths.push((cert, key));
        }
        let mut db = self.open_db(Some(ca))?;
        let mut out = Vec::with_capacity(leaves.len());
        for (chunk, chunk_paths) in leaves.chunks(BATCH).zip(paths.chunks(BATCH)) {
            out.extend(self.issue_chunk(&mut db, ca, chunk, chunk_paths)?);
            progress(out.len());
        }
        self.export(&mut db, ca)?;
        Ok(out)
    }

    fn issue_chunk(
        &self,
        db: &mut Db,
        ca: &Issuer,
        leaves: &[Leaf],
        paths: &[(PathBuf, PathBuf)],
    ) -> Result<Vec<Issued>> {
        let chain = self.chain_after_leaf()?;
        let mut staged = Vec::with_capacity(leaves.len() * 2);
        let mut records = Vec::with_capacity(leaves.len());
        let mut issued = Vec::with_capacity(leaves.len());
        for (leaf, (cert_path, key_path)) in leaves.iter().zip(paths) {
            let key = key::generate(leaf.key)?;
            let public = public_of(&key)?;
            let subject = leaf.subject.to_x509_name()?;
            let (cert, rec) = self.sign(ca, leaf, &subject, &public, cert_path)?;
            staged.push(files::stage_unsynced(
                "private key",
                key_path,
                &key::to_pem(&key)?,
                Secrecy::Secret,
                Overwrite::Never,
            )?);
            let mut pem = cert.to_pem().step("x509 -out")?;
            pem.extend_from_slice(&chain);
            staged.push(files::stage_unsynced(
                "certificate",
                cert_path,
                &pem,
                Secrecy::Public,
                Overwrite::Never,
            )?);
            issued.push(Issued {
                serial: rec.serial.clone(),
                cert,
                cert_path: cert_path.clone(),
                key_path: key_path.clone(),
            });
            records.push(rec);
        }
        // Every staged file on disk before a record names it: one sync for the batch.
        if let Some(first) = staged.first() {
            files::sync_filesystem("certificate", first.path())?;
        }
        db.insert_all(&records)?;
        files::crash_point("crash-after-commit");
        // One folder sync per folder, after every rename of the batch.
        let mut folders = std::collections::BTreeMap::new();
        for s in staged {
            let file = s.path().to_owned();
            folders.insert(file.parent().map(Path::to_owned), file);
            s.rename()?;
        }
        for file in folders.values() {
            files::sync_dir("certificate", file)?;
        }
        let serials: Vec<String> = records.iter().map(|r| r.serial.clone()).collect();
        let aki = key_id(ca.certificate())?;
        db.settle(&aki, &serials)?;
        Ok(issued)
    }
}
