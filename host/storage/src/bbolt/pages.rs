//! The writer's page output: page ids handed out in file order from page 2 (0 and 1 are the meta
//! pages, written last), each node encoded into one reused buffer and written at its place.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::build::encode_node;
use super::error::WriteError;

pub(crate) struct PageOut {
    file: File,
    page_size: u64,
    /// The next free page id: the high-water mark so far.
    next: u64,
    buf: Vec<u8>,
}

impl PageOut {
    pub fn new(file: File, page_size: u32) -> PageOut {
        PageOut { file, page_size: u64::from(page_size), next: 2, buf: Vec::new() }
    }

    pub fn high_water(&self) -> u64 {
        self.next
    }

    /// Writes a node of `size` encoded bytes (header, elements, keys and values) at the next
    /// page id, with as many overflow pages as it needs; returns its id.
    pub fn write_node<'a>(
        &mut self,
        flags: u16,
        size: usize,
        elems: impl ExactSizeIterator<Item = (u32, &'a [u8], &'a [u8])>,
    ) -> Result<u64, WriteError> {
        let pages = (size as u64).div_ceil(self.page_size).max(1);
        let overflow = u32::try_from(pages - 1).map_err(|_| WriteError::TooLarge)?;
        let id = self.next;
        self.buf.clear();
        self.buf.resize((pages * self.page_size) as usize, 0);
        encode_node(&mut self.buf, id, flags, overflow, elems);
        self.put(id, pages)?;
        Ok(id)
    }

    /// Writes a page whose header the caller encodes into `f`'s zeroed buffer of one page.
    pub fn write_page(&mut self, f: impl FnOnce(&mut [u8], u64)) -> Result<u64, WriteError> {
        let id = self.next;
        self.buf.clear();
        self.buf.resize(self.page_size as usize, 0);
        f(&mut self.buf, id);
        self.put(id, 1)?;
        Ok(id)
    }

    fn put(&mut self, id: u64, pages: u64) -> Result<(), WriteError> {
        let next = id.checked_add(pages).filter(|n| n.checked_mul(self.page_size).is_some());
        self.next = next.ok_or(WriteError::TooLarge)?;
        let offset = id * self.page_size;
        self.file.write_all_at(&self.buf, offset).map_err(|source| WriteError::Io { offset, source })
    }

    /// Writes page `id` (a meta page) from `page`.
    pub fn write_at(&self, id: u64, page: &[u8]) -> Result<(), WriteError> {
        let offset = id * self.page_size;
        self.file.write_all_at(page, offset).map_err(|source| WriteError::Io { offset, source })
    }

    /// Cuts the file at the high-water mark (in case it was not empty) and makes it durable.
    pub fn sync(self) -> Result<File, WriteError> {
        let len = self.next * self.page_size;
        self.file.set_len(len).map_err(|source| WriteError::Io { offset: len, source })?;
        self.file.sync_all().map_err(WriteError::Sync)?;
        Ok(self.file)
    }
}
