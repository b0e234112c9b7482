//! The guest's heap: dlmalloc, as in any Rust Wasm program, but fed first from a zeroed static
//! arena instead of `memory.grow`. Installed as the global allocator of every guest built on this
//! SDK for Wasm (feature `entry-arena`, on by default).
//!
//! Why: every entry runs in a fresh instance, and Rust's default Wasm allocator takes all its
//! memory with `memory.grow`, so every instance grew its memory on its first allocation. The
//! host's pooling allocator then made the new pages accessible (an `mprotect`) and, when the next
//! entry reused the slot, inaccessible again (another `mprotect`, with a TLB shootdown on every
//! core). In a profile of a member under put load those two system calls were a sixth of the
//! apply thread.
//!
//! Here dlmalloc's first region is [`ARENA_BYTES`] of `.bss`: part of the module's initial
//! memory but not of its data image, so an instance starts with it mapped, it costs nothing to
//! set up, and a normal entry never changes the memory's size. Only an entry that needs more
//! grows the memory, as before. Freed memory is reused as before (a guest may allocate and free
//! far more than its memory cap over one entry: the KV guest's compaction walks the whole store).
//!
//! Determinism is unaffected: the allocator is ordinary guest code, the same on every member.
//! A guest that wants another allocator disables the feature (`default-features = false`) and
//! declares its own `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};

use dlmalloc::{Allocator, Dlmalloc};

/// The static region. The bundled KV guest's put needs a few KiB; 1 MiB covers ordinary entries
/// of most guests while adding little to every instance's initial memory.
pub const ARENA_BYTES: usize = 1 << 20;

const WASM_PAGE: usize = 64 << 10;

/// dlmalloc's flag for a region it did not get from the system: never freed nor merged.
const EXTERN_BIT: u32 = 1;

#[repr(C, align(64))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: only dlmalloc touches the arena's bytes, through the single-threaded heap below.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));

/// dlmalloc's source of memory: the arena once, then `memory.grow`.
pub struct ArenaThenGrow {
    arena_given: Cell<bool>,
}

// SAFETY: Wasm guests are single-threaded (the host refuses threads and shared memories); the
// trait asks for Send only because dlmalloc's own global allocator may be shared across threads.
unsafe impl Send for ArenaThenGrow {}

// SAFETY: the regions handed out are valid, disjoint and zeroed (the arena is a zeroed static
// given out once; grown Wasm pages are zero), and nothing is ever given back.
unsafe impl Allocator for ArenaThenGrow {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if !self.arena_given.get() && size <= ARENA_BYTES {
            self.arena_given.set(true);
            return (ARENA.0.get().cast::<u8>(), ARENA_BYTES, EXTERN_BIT);
        }
        match grow(size.div_ceil(WASM_PAGE)) {
            Some((start, len)) => (start, len, 0),
            None => (core::ptr::null_mut(), 0, 0),
        }
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        core::ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        WASM_PAGE
    }
}

/// Grows the linear memory by `pages`; None when the host refuses (the deployment's memory cap).
#[cfg(target_arch = "wasm32")]
fn grow(pages: usize) -> Option<(*mut u8, usize)> {
    let previous = core::arch::wasm32::memory_grow(0, pages);
    (previous != usize::MAX).then(|| ((previous * WASM_PAGE) as *mut u8, pages * WASM_PAGE))
}

/// Natively (unit tests) there is no linear memory to grow: the arena is all there is.
#[cfg(not(target_arch = "wasm32"))]
fn grow(_pages: usize) -> Option<(*mut u8, usize)> {
    None
}

/// The global allocator: dlmalloc over [`ArenaThenGrow`].
pub struct GuestHeap(UnsafeCell<Dlmalloc<ArenaThenGrow>>);

// SAFETY: single-threaded guests (see [`ArenaThenGrow`]).
unsafe impl Sync for GuestHeap {}

impl GuestHeap {
    pub const fn new() -> Self {
        GuestHeap(UnsafeCell::new(Dlmalloc::new_with_allocator(ArenaThenGrow { arena_given: Cell::new(false) })))
    }

    /// # Safety
    /// Single-threaded use only, and no other reference from this function may be alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn heap(&self) -> &mut Dlmalloc<ArenaThenGrow> {
        // SAFETY: the caller's promise.
        unsafe { &mut *self.0.get() }
    }
}

impl Default for GuestHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards to dlmalloc, which upholds GlobalAlloc's contract; each call takes the only
// reference to the heap for its duration (single-threaded, no reentrancy).
unsafe impl GlobalAlloc for GuestHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { self.heap().malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { self.heap().calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.heap().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { self.heap().realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

#[cfg(test)]
mod tests {
    // One test only: the arena is a process-wide static that a heap takes once.
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap_or_else(|e| panic!("layout: {e}"))
    }

    #[test]
    fn the_heap_lives_in_the_arena_reuses_freed_memory_and_fails_cleanly() {
        static HEAP: GuestHeap = GuestHeap::new();
        let arena = ARENA.0.get() as usize..ARENA.0.get() as usize + ARENA_BYTES;
        unsafe {
            let a = HEAP.alloc(layout(100, 8));
            let b = HEAP.alloc_zeroed(layout(4096, 64));
            assert!(arena.contains(&(a as usize)) && arena.contains(&(b as usize)));
            assert_eq!(b as usize % 64, 0);
            assert!((0..4096).all(|i| *b.add(i) == 0));
            // Far more than the arena over time, as long as it is freed: memory is reused.
            for _ in 0..64 {
                let big = HEAP.alloc(layout(256 << 10, 8));
                assert!(arena.contains(&(big as usize)), "freed memory is reused");
                big.write_bytes(1, 256 << 10);
                HEAP.dealloc(big, layout(256 << 10, 8));
            }
            let grown = HEAP.realloc(a, layout(100, 8), 1000);
            assert!(arena.contains(&(grown as usize)));
            // Natively nothing can grow beyond the arena: a clean null, not a wrong pointer.
            assert!(HEAP.alloc(layout(2 * ARENA_BYTES, 8)).is_null());
            HEAP.dealloc(grown, layout(1000, 8));
            HEAP.dealloc(b, layout(4096, 64));
        }
    }
}
