//! The data folder's format: which twin wrote it, and whether this one can open it.
//!
//! The folder holds the stream (`stream.redb`), dynalite's LevelDB (`dynamodb/`), the bucket
//! (`bucket/`), the API key and, since format 1 was marked, `orderflow-data.json`:
//! `{"format": 1, "written_by": "orderflow 0.1.0"}`. A twin opens a folder of its own format
//! or older (migrating it first, when a later format needs that), marks a new or unmarked
//! folder, and refuses a newer format with a message naming both versions and what to do,
//! before it changes anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file that names the folder's format.
pub const FORMAT_FILE: &str = "orderflow-data.json";

/// The format this twin writes. Format 1: `stream.redb` (redb 2 tables `records`,
/// `checkpoints`, `meta`), `dynamodb/` (dynalite 3), `bucket/` (plain files), `api-key`.
pub const FORMAT: u32 = 1;

/// What the twin keeps in a data folder: a folder holding any of these but no format file was
/// written by a twin before the format was marked, which is format 1.
const TWIN_ENTRIES: &[&str] = &["stream.redb", "dynamodb", "bucket", "api-key", "twin.json"];

/// Why a data folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataFolderError {
    /// Written by a newer twin.
    #[error(
        "the data folder {path} was written by {written_by} (data format {format}); this orderflow \
         ({this}) reads data format {FORMAT} and older. Run {written_by} or newer on it, or start \
         this version with another --data-dir; the folder was not changed"
    )]
    Newer {
        /// The folder.
        path: PathBuf,
        /// Its format.
        format: u32,
        /// The twin that wrote it.
        written_by: String,
        /// This twin.
        this: String,
    },
    /// The format file is not readable as one.
    #[error(
        "{path} is not a valid orderflow data format file ({reason}); if the folder is a twin's, \
         restore the file as {{\"format\": {FORMAT}, \"written_by\": \"...\"}}, else use another --data-dir"
    )]
    Unreadable {
        /// The format file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A non-empty folder that is not a twin's.
    #[error(
        "{path} is not an orderflow data folder (it holds other files, e.g. {example:?}, and no \
         {FORMAT_FILE}); give an empty or new folder with --data-dir"
    )]
    Foreign {
        /// The folder.
        path: PathBuf,
        /// One of its entries.
        example: String,
    },
    /// Reading or writing the folder failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The content of [`FORMAT_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatMark {
    /// The data format.
    pub format: u32,
    /// The twin that last marked it (`orderflow 0.1.0`).
    pub written_by: String,
}

/// This twin, as it names itself in [`FormatMark::written_by`].
pub fn this_version() -> String {
    format!("orderflow {}", env!("CARGO_PKG_VERSION"))
}

/// Checks that this twin can open the folder at `path` (which may not exist), without changing
/// anything: the folder's format, `None` for a new or empty folder.
pub fn check(path: &Path) -> Result<Option<u32>, DataFolderError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| DataFolderError::Io { what, path, source }
    };
    let mark_path = path.join(FORMAT_FILE);
    match std::fs::read(&mark_path) {
        Ok(bytes) => {
            let mark: FormatMark =
                serde_json::from_slice(&bytes).map_err(|error| DataFolderError::Unreadable {
                    path: mark_path.clone(),
                    reason: error.to_string(),
                })?;
            if mark.format > FORMAT {
                return Err(DataFolderError::Newer {
                    path: path.to_owned(),
                    format: mark.format,
                    written_by: mark.written_by,
                    this: this_version(),
                });
            }
            if mark.format == 0 {
                return Err(DataFolderError::Unreadable {
                    path: mark_path,
                    reason: "format 0 does not exist".to_owned(),
                });
            }
            return Ok(Some(mark.format));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io("reading", &mark_path)(error)),
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io("reading the data folder", path)(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("reading the data folder", path))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(None);
    }
    if names
        .iter()
        .any(|name| TWIN_ENTRIES.contains(&name.as_str()))
    {
        // A twin's folder from before the format was marked: format 1.
        return Ok(Some(1));
    }
    names.sort();
    Err(DataFolderError::Foreign {
        path: path.to_owned(),
        example: names.swap_remove(0),
    })
}

/// Opens the folder at `path` for a running twin: [`check`]s it, creates it if needed and marks
/// it with this twin's format (fsynced), before anything else is written to it.
pub fn open(path: &Path) -> Result<u32, DataFolderError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| DataFolderError::Io { what, path, source }
    };
    let format = check(path)?;
    // Format 1 is the only one so far: nothing to migrate. A later format migrates here, from
    // `format` to FORMAT, before the mark is rewritten.
    std::fs::create_dir_all(path).map_err(io("creating the data folder", path))?;
    let mark = FormatMark {
        format: FORMAT,
        written_by: this_version(),
    };
    let mark_path = path.join(FORMAT_FILE);
    let current = std::fs::read(&mark_path).ok();
    let bytes = serde_json::to_vec_pretty(&mark).expect("the mark serialises");
    if current.as_deref() != Some(&bytes[..]) {
        let temporary = path.join(format!("{FORMAT_FILE}.tmp"));
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary)
                .map_err(io("writing the data format file", &temporary))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(io("writing the data format file", &temporary))?;
        }
        std::fs::rename(&temporary, &mark_path)
            .map_err(io("writing the data format file", &mark_path))?;
        if let Ok(folder) = std::fs::File::open(path) {
            let _ = folder.sync_all();
        }
    }
    Ok(format.unwrap_or(FORMAT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_folder_is_marked_and_an_unmarked_twin_folder_is_format_1() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("new");
        assert_eq!(check(&new).unwrap(), None);
        assert_eq!(open(&new).unwrap(), FORMAT);
        let mark: FormatMark =
            serde_json::from_slice(&std::fs::read(new.join(FORMAT_FILE)).unwrap()).unwrap();
        assert_eq!(mark.format, FORMAT);
        assert_eq!(check(&new).unwrap(), Some(FORMAT));

        let old = root.path().join("old");
        std::fs::create_dir_all(old.join("bucket")).unwrap();
        assert_eq!(check(&old).unwrap(), Some(1));
        assert!(!old.join(FORMAT_FILE).exists(), "check changes nothing");
        assert_eq!(open(&old).unwrap(), 1);
        assert!(old.join(FORMAT_FILE).exists());
    }

    #[test]
    fn a_newer_format_or_a_foreign_folder_is_refused_by_name_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let newer = root.path().join("newer");
        std::fs::create_dir_all(&newer).unwrap();
        let mark = br#"{"format": 7, "written_by": "orderflow 9.0.0"}"#;
        std::fs::write(newer.join(FORMAT_FILE), mark).unwrap();
        let error = open(&newer).unwrap_err().to_string();
        assert!(error.contains("orderflow 9.0.0"), "{error}");
        assert!(error.contains("data format 7"), "{error}");
        assert!(error.contains(&this_version()), "{error}");
        assert!(error.contains("another --data-dir"), "{error}");
        assert_eq!(std::fs::read(newer.join(FORMAT_FILE)).unwrap(), mark);

        let foreign = root.path().join("home");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
        let error = open(&foreign).unwrap_err().to_string();
        assert!(error.contains("not an orderflow data folder"), "{error}");
        assert!(error.contains("notes.txt"), "{error}");
        assert!(!foreign.join(FORMAT_FILE).exists());

        let broken = root.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join(FORMAT_FILE), "{").unwrap();
        let error = open(&broken).unwrap_err().to_string();
        assert!(
            error.contains("not a valid orderflow data format file"),
            "{error}"
        );
    }
}
