//! The bucket: every object the twin writes (Parquet files, Firehose error output, the consumer's
//! failure store) goes through [`object_store`], so a local folder or an S3 endpoint can hold it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Told of every object [`Bucket::put`] wrote (after it is durable).
pub trait PutObserver: Send + Sync {
    /// `key` now holds `bytes`.
    fn written(&self, key: &str, bytes: &[u8]);
    /// `key` was deleted.
    fn deleted(&self, key: &str);
}

/// The twin's bucket.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    root: PathBuf,
    observer: Option<Arc<dyn PutObserver>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("root", &self.root).finish()
    }
}

impl Bucket {
    /// A bucket in a local folder (created if missing).
    pub fn local(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the bucket folder {}", root.display()))?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Bucket {
            store: Arc::new(store),
            root,
            observer: None,
        })
    }

    /// This bucket, telling `observer` of every object written through it (and its clones).
    pub fn observed(self, observer: Arc<dyn PutObserver>) -> Self {
        Bucket {
            observer: Some(observer),
            ..self
        }
    }

    /// The folder the bucket lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes one object (all or nothing: readers never see half of it).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = ObjectPath::parse(key).with_context(|| format!("object key {key}"))?;
        let payload = PutPayload::from(bytes);
        self.store
            .put(&path, payload.clone())
            .await
            .with_context(|| format!("writing s3 object {key}"))?;
        // object_store's local store renames a finished temporary file into place but does not
        // fsync; the checkpoints saved after a delivery are fsynced, so the object must be too,
        // or a power loss could keep the checkpoint and lose the object.
        let file = self.root.join(key);
        tokio::task::spawn_blocking(move || sync_file_and_folder(&file))
            .await?
            .with_context(|| format!("syncing s3 object {key}"))?;
        if let Some(observer) = &self.observer {
            match payload.as_ref() {
                [whole] => observer.written(key, whole),
                chunks => observer.written(key, &chunks.concat()),
            }
        }
        Ok(())
    }

    /// Deletes one object (durably: its folder is synced), telling the observer.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = ObjectPath::parse(key).with_context(|| format!("object key {key}"))?;
        self.store
            .delete(&path)
            .await
            .with_context(|| format!("deleting s3 object {key}"))?;
        if let Some(folder) = self.root.join(key).parent().map(Path::to_owned) {
            tokio::task::spawn_blocking(move || std::fs::File::open(folder)?.sync_all())
                .await?
                .with_context(|| format!("syncing the folder of {key}"))?;
        }
        if let Some(observer) = &self.observer {
            observer.deleted(key);
        }
        Ok(())
    }

    /// Keys and sizes of the objects under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        use futures::TryStreamExt;
        let prefix = ObjectPath::parse(prefix)?;
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|meta| (meta.location.to_string(), meta.size))
            .collect())
    }

    /// The row count of a Parquet object, from its footer (two range reads, not the whole file).
    pub async fn parquet_rows(&self, key: &str, size: u64) -> Result<u64> {
        let path = ObjectPath::parse(key)?;
        anyhow::ensure!(size >= 12, "{key} is too small to be Parquet");
        let tail = self.store.get_range(&path, size - 8..size).await?;
        let metadata = footer_range(key, size, &tail)?;
        let metadata = self.store.get_range(&path, metadata).await?;
        rows_in_footer(key, &metadata)
    }

    /// Reads one object.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = ObjectPath::parse(key)?;
        let bytes = self.store.get(&path).await?.bytes().await?;
        Ok(bytes.to_vec())
    }
}

/// The row count of a whole Parquet file held in memory.
pub fn parquet_rows_of(key: &str, bytes: &[u8]) -> Result<u64> {
    let size = bytes.len() as u64;
    anyhow::ensure!(size >= 12, "{key} is too small to be Parquet");
    let metadata = footer_range(key, size, &bytes[bytes.len() - 8..])?;
    rows_in_footer(key, &bytes[metadata.start as usize..metadata.end as usize])
}

/// Where a Parquet file of `size` bytes keeps its metadata, from its last 8 bytes.
fn footer_range(key: &str, size: u64, tail: &[u8]) -> Result<std::ops::Range<u64>> {
    use datafusion::parquet::file::metadata::FooterTail;
    let tail: [u8; 8] = tail.try_into()?;
    let footer = FooterTail::try_new(&tail)
        .with_context(|| format!("reading the Parquet footer of {key}"))?;
    let length = footer.metadata_length() as u64;
    anyhow::ensure!(length + 8 <= size, "{key}: footer longer than the file");
    Ok(size - 8 - length..size - 8)
}

/// The row count in a Parquet file's metadata.
fn rows_in_footer(key: &str, metadata: &[u8]) -> Result<u64> {
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;
    let metadata = ParquetMetaDataReader::decode_metadata(metadata)
        .with_context(|| format!("reading the Parquet footer of {key}"))?;
    Ok(metadata.file_metadata().num_rows() as u64)
}

fn sync_file_and_folder(file: &Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(folder) = file.parent() {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_round_trip_in_a_local_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = Bucket::local(dir.path()).unwrap();
        bucket.put("a/b/c.json", b"{}".to_vec()).await.unwrap();
        assert_eq!(bucket.get("a/b/c.json").await.unwrap(), b"{}");
        assert_eq!(
            bucket.list("a").await.unwrap(),
            vec![("a/b/c.json".into(), 2)]
        );
        assert!(dir.path().join("a/b/c.json").exists());
    }
}
