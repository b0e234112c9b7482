//! Opening a bbolt file: choosing its meta page as bbolt does, and reading pages on demand, each
//! checked before it is used (id below the high-water mark and inside the file, header id and
//! flags as expected, element table inside the page). Nothing is trusted: an allocation is never
//! larger than the file, and every failure is a [`Corruption`] naming the page.

use std::fs::File;

use super::check::MAX_BUCKET_DEPTH;
use super::cursor::{Entries, Value};
use super::error::{Corruption, MetaProblem, ReadError};
use super::meta::{self, META_PAGE_BYTES, Meta, NO_FREELIST, PAGE_SIZE_GUESSES};
use super::page::{BRANCH, BUCKET_HEADER, HEADER, Header, LEAF, Page, u64_at};
use super::source::Source;

/// What the chosen meta page says (what `bbolt info` and `etcdctl snapshot status` show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    pub page_size: u32,
    /// The transaction id of the last commit.
    pub txid: u64,
    /// The high-water mark: pages `0..high_water` are the database.
    pub high_water: u64,
    /// Which meta page was chosen (0 or 1).
    pub meta_page: u64,
    /// The root bucket's root page.
    pub root: u64,
    /// The freelist page, or None when the file does not store its freelist (NoFreelistSync).
    pub freelist: Option<u64>,
    /// The file's (or source's) length, which may be more than the database (bbolt grows files
    /// ahead; `etcdctl snapshot save` appends a sha256).
    pub file_len: u64,
}

impl Info {
    /// The database's size in bytes, `high_water * page_size`: bbolt's `Tx.Size`, what
    /// `etcdctl snapshot status` prints as the total size.
    pub fn size(&self) -> u64 {
        self.high_water * u64::from(self.page_size)
    }
}

/// A bucket: where its pages are, or its inline page. Obtained from [`Reader::root`] or as a
/// nested bucket's [`Value::Bucket`](super::Value::Bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub(crate) root: BucketRoot,
    pub(crate) sequence: u64,
    /// How deep it is nested (0: the root bucket), bounded by [`MAX_BUCKET_DEPTH`].
    pub(crate) depth: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BucketRoot {
    Page(u64),
    /// An inline bucket's page (the value's bytes after the bucket header), and the page whose
    /// leaf holds it (for error messages: an inline page has no id of its own).
    Inline {
        bytes: Vec<u8>,
        parent: u64,
    },
}

impl Bucket {
    /// The bucket's sequence (bbolt's `NextSequence` counter).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The bucket's root page, None for an inline bucket (stored in its parent's leaf).
    pub fn root_page(&self) -> Option<u64> {
        match self.root {
            BucketRoot::Page(p) => Some(p),
            BucketRoot::Inline { .. } => None,
        }
    }

    /// A bucket from a leaf element's value flagged as a bucket: `root u64, sequence u64`, and
    /// when root is 0 an inline leaf page.
    pub(crate) fn from_value(value: &[u8], page: u64, index: usize, depth: usize) -> Result<Bucket, Corruption> {
        if depth > MAX_BUCKET_DEPTH {
            return Err(Corruption::BucketsTooDeep { max: MAX_BUCKET_DEPTH });
        }
        if value.len() < BUCKET_HEADER {
            return Err(Corruption::BadBucketValue { page, index, len: value.len() });
        }
        let (root, sequence) = (u64_at(value, 0), u64_at(value, 8));
        if root != 0 {
            return Ok(Bucket { root: BucketRoot::Page(root), sequence, depth });
        }
        let inline = &value[BUCKET_HEADER..];
        if inline.len() < HEADER {
            return Err(Corruption::BadBucketValue { page, index, len: value.len() });
        }
        let flags = Header::decode(inline).flags;
        if flags & LEAF == 0 || flags & BRANCH != 0 {
            return Err(Corruption::InlineNotLeaf { page, index, flags });
        }
        Ok(Bucket { root: BucketRoot::Inline { bytes: inline.to_vec(), parent: page }, sequence, depth })
    }
}

/// A bbolt file open for reading.
pub struct Reader<S = File> {
    src: S,
    len: u64,
    meta: Meta,
    meta_page: u64,
}

impl Reader<File> {
    /// Opens a bbolt file: reads and chooses its meta page; pages are read as they are needed.
    pub fn open(file: File) -> Result<Reader<File>, ReadError> {
        Reader::from_source(file)
    }
}

impl<S: Source> Reader<S> {
    /// As [`Reader::open`], over any [`Source`] (bytes in memory, say).
    pub fn from_source(src: S) -> Result<Reader<S>, ReadError> {
        let len = src.size().map_err(|source| ReadError::Io { offset: 0, len: 0, source })?;
        let read_meta = |offset: u64, page_size: Option<u32>| -> Result<Result<Meta, MetaProblem>, ReadError> {
            if offset + META_PAGE_BYTES as u64 > len {
                return Ok(Err(MetaProblem::Missing));
            }
            let mut b = [0u8; META_PAGE_BYTES];
            src.read_exact_at(&mut b, offset).map_err(|source| ReadError::Io { offset, len: b.len(), source })?;
            Ok(Meta::decode(&b, page_size))
        };
        if len < 2 * META_PAGE_BYTES as u64 {
            return Err(Corruption::FileTooShort { len }.into());
        }
        let meta0 = read_meta(0, None)?;
        // Meta 0 says the page size; if it is damaged, look for meta 1 where the usual page sizes
        // would put it (it must then say that same page size).
        let meta1 = match meta0 {
            Ok(m) => read_meta(u64::from(m.page_size), Some(m.page_size))?,
            Err(_) => {
                let mut found = Err(MetaProblem::Missing);
                for guess in PAGE_SIZE_GUESSES {
                    match read_meta(u64::from(guess), Some(guess))? {
                        Ok(m) => {
                            found = Ok(m);
                            break;
                        }
                        // For the message: a damaged meta page where one was found, else what
                        // the default page size found.
                        Err(p)
                            if found.as_ref().is_err_and(|f| !f.is_meta_page())
                                && (p.is_meta_page() || guess == PAGE_SIZE_GUESSES[0]) =>
                        {
                            found = Err(p)
                        }
                        Err(_) => {}
                    }
                }
                found
            }
        };
        let meta_page = match (&meta0, &meta1) {
            (Ok(a), Ok(b)) if b.txid > a.txid => 1,
            (Ok(_), _) => 0,
            _ => 1,
        };
        let meta = meta::choose(meta0, meta1)
            .map_err(|(meta0, meta1)| ReadError::from(Corruption::NoValidMeta { meta0, meta1 }))?;
        let db_len = meta.pgid.checked_mul(u64::from(meta.page_size));
        if db_len.is_none_or(|n| n > len) {
            return Err(Corruption::Truncated { pages: meta.pgid, page_size: meta.page_size, len }.into());
        }
        Ok(Reader { src, len, meta, meta_page })
    }

    pub fn info(&self) -> Info {
        Info {
            page_size: self.meta.page_size,
            txid: self.meta.txid,
            high_water: self.meta.pgid,
            meta_page: self.meta_page,
            root: self.meta.root,
            freelist: (self.meta.freelist != NO_FREELIST).then_some(self.meta.freelist),
            file_len: self.len,
        }
    }

    /// The root bucket: its entries are the top-level buckets.
    pub fn root(&self) -> Bucket {
        Bucket { root: BucketRoot::Page(self.meta.root), sequence: self.meta.sequence, depth: 0 }
    }

    /// A bucket's entries in key order, streaming: the iterator holds the pages on the path from
    /// the bucket's root to the current leaf, nothing more. After an error it ends.
    ///
    /// One bucket's walk reads at most as many pages as the file has, and buckets nest at most
    /// [`MAX_BUCKET_DEPTH`] deep. A hostile file can still make nested buckets share subtrees, so
    /// a recursive walk of every nested bucket of an untrusted file should be [`Reader::walk`],
    /// which reads each page once.
    pub fn entries(&self, bucket: &Bucket) -> Entries<'_, S> {
        Entries::new(self, bucket)
    }

    /// The top-level bucket `name`, if there is one (None too if `name` is a plain key).
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket>, ReadError> {
        Ok(self.get(&self.root(), name)?.and_then(Value::into_bucket))
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Reads data page `id` with its overflow pages, expecting one of `kinds`.
    pub(crate) fn page(&self, id: u64, kinds: u16) -> Result<Page, ReadError> {
        let high_water = self.meta.pgid;
        if id < 2 || id >= high_water {
            return Err(Corruption::PageOutOfRange { page: id, overflow: 0, high_water }.into());
        }
        let page_size = u64::from(self.meta.page_size);
        // Below the high-water mark, which open checked is inside the file.
        let offset = id * page_size;
        let mut first = vec![0u8; self.meta.page_size as usize];
        self.read(&mut first, offset)?;
        let header = Header::decode(&first);
        if header.id != id {
            return Err(Corruption::WrongPageId { page: id, found: header.id }.into());
        }
        let end = id.checked_add(u64::from(header.overflow)).filter(|e| *e < high_water);
        if end.is_none() {
            return Err(Corruption::PageOutOfRange { page: id, overflow: header.overflow, high_water }.into());
        }
        // Only now, with the whole run below the high-water mark (so inside the file), is the
        // buffer sized by the page's own overflow count.
        let bytes = if header.overflow == 0 {
            first
        } else {
            let total = (u64::from(header.overflow) + 1) * page_size;
            let mut bytes = first;
            let rest = bytes.len();
            bytes.resize(total as usize, 0);
            self.read(&mut bytes[rest..], offset + rest as u64)?;
            bytes
        };
        Ok(Page::new(id, bytes, kinds)?)
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
        self.src.read_exact_at(buf, offset).map_err(|source| ReadError::Io { offset, len: buf.len(), source })
    }
}
