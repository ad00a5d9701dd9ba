//! Recycled frame buffers: the chunks a TX engine gathers frames into, returned to a bounded pool
//! and reused once every frame carved from them has left the egress stage.
//!
//! A TX engine gathers each packet at the end of a [`PooledBuf`] and splits it off as its own
//! `Bytes`, so a chunk of [`CHUNK_LEN`] bytes carries many frames and no frame allocates. When
//! the chunk is used up, [`ChunkPool::reserve`] hands the engine another one and keeps the used
//! chunk's handle. That handle becomes unique again when the last frame of the chunk is dropped
//! (after the wire, or a discard); the pool then reclaims the whole chunk in place
//! (`BytesMut::try_reclaim`, no allocation, no copy) for the next request.
//!
//! Without the pool, a HAC epoch's chunks go back to the allocator all at once after its commit
//! (for a 1 ms epoch at 100 Gb/s, 9–12 MB), the allocator trims its heap, and the next epoch
//! writes into freshly faulted pages. With it, the same chunks cycle through the held epochs.
//!
//! The pool is bounded: it keeps at most `max_chunks` handles (idle chunks are memory the model
//! keeps mapped); a handle beyond that is let go and its chunk returns to the allocator when its
//! frames are dropped, as without the pool. Nothing here changes a frame's bytes or order.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use bytes::BytesMut;

/// Bytes a chunk holds: 1 092 frames of 60 bytes, 43 of 1514.
pub const CHUNK_LEN: usize = 64 * 1024;

/// Handles a pool keeps by default: 512 chunks, 32 MiB of frame buffers (eight VFs at a 4 MiB
/// HAC limit each).
pub const DEFAULT_MAX_CHUNKS: usize = 512;

/// Retired handles one request looks at before it allocates: held chunks are rotated to the back,
/// so a chunk of a pool that is still buffering does not hide free ones behind it for long.
const SCAN: usize = 4;

/// A frame buffer that may be a pool's chunk: derefs to its [`BytesMut`].
///
/// Only [`ChunkPool::reserve`] gives it capacity from a chunk; a clone is a plain copy of its
/// bytes and does not go back to any pool.
#[derive(Debug, Default)]
pub struct PooledBuf {
    buf: BytesMut,
    /// The buffer is a pool's chunk, retired to the pool when it is used up.
    pooled: bool,
}

impl Clone for PooledBuf {
    fn clone(&self) -> PooledBuf {
        PooledBuf {
            buf: self.buf.clone(),
            pooled: false,
        }
    }
}

impl Deref for PooledBuf {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

/// What a [`ChunkPool`] did since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkPoolStats {
    /// Chunks allocated because no retired chunk was free.
    pub allocated: u64,
    /// Chunks reclaimed from the pool.
    pub reused: u64,
    /// Used-up chunks let go because the pool was full (their memory returns to the allocator
    /// when their frames are dropped).
    pub released: u64,
}

/// A bounded pool of used-up frame chunks, reused once their frames are gone.
#[derive(Debug)]
pub struct ChunkPool {
    /// Handles of used-up chunks, oldest first (frames leave roughly in that order).
    retired: VecDeque<BytesMut>,
    chunk_len: usize,
    max_chunks: usize,
    stats: ChunkPoolStats,
}

impl Default for ChunkPool {
    fn default() -> ChunkPool {
        ChunkPool::new(CHUNK_LEN, DEFAULT_MAX_CHUNKS)
    }
}

impl Clone for ChunkPool {
    /// An empty pool of the same shape: the chunks belong to the frames of the original.
    fn clone(&self) -> ChunkPool {
        ChunkPool::new(self.chunk_len, self.max_chunks)
    }
}

impl ChunkPool {
    /// A pool of chunks of `chunk_len` bytes (at least 1) keeping at most `max_chunks` handles.
    pub fn new(chunk_len: usize, max_chunks: usize) -> ChunkPool {
        ChunkPool {
            retired: VecDeque::with_capacity(max_chunks),
            chunk_len: chunk_len.max(1),
            max_chunks,
            stats: ChunkPoolStats::default(),
        }
    }

    /// Counts of allocated, reused and released chunks.
    pub fn stats(&self) -> ChunkPoolStats {
        self.stats
    }

    /// Used-up chunks the pool holds (free or still carrying frames).
    pub fn retired(&self) -> usize {
        self.retired.len()
    }

    /// Makes room for `additional` more bytes at the end of `buf`, keeping its bytes (a packet
    /// being gathered). When the chunk is used up, the bytes move to a reclaimed chunk, or a new
    /// one (of `additional` plus the bytes if that is more than a chunk), and the used-up chunk is
    /// retired to the pool.
    pub fn reserve(&mut self, buf: &mut PooledBuf, additional: usize) {
        if buf.buf.capacity() - buf.buf.len() >= additional {
            return;
        }
        let need = buf.buf.len().saturating_add(additional);
        let reclaimed = if need <= self.chunk_len {
            self.take()
        } else {
            None
        };
        let mut fresh = reclaimed.unwrap_or_else(|| {
            self.stats.allocated += 1;
            BytesMut::with_capacity(need.max(self.chunk_len))
        });
        fresh.extend_from_slice(&buf.buf);
        let mut old = std::mem::replace(&mut buf.buf, fresh);
        if std::mem::replace(&mut buf.pooled, true) {
            old.clear();
            if self.retired.len() < self.max_chunks {
                self.retired.push_back(old);
            } else {
                self.stats.released += 1;
            }
        }
    }

    /// A retired chunk whose frames are all gone, reclaimed whole.
    fn take(&mut self) -> Option<BytesMut> {
        for _ in 0..self.retired.len().min(SCAN) {
            let mut chunk = self.retired.pop_front()?;
            // Succeeds only when this handle is the chunk's last reference (or its own spare
            // room already suffices), so no frame's bytes are ever written.
            if chunk.try_reclaim(self.chunk_len) {
                self.stats.reused += 1;
                return Some(chunk);
            }
            self.retired.push_back(chunk);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Gathers `len` bytes of `fill` as one frame, as a TX engine does.
    fn frame(pool: &mut ChunkPool, buf: &mut PooledBuf, len: usize, fill: u8) -> Bytes {
        pool.reserve(buf, len);
        let start = buf.len();
        buf.resize(start + len, fill);
        buf.split().freeze()
    }

    #[test]
    fn a_chunk_is_reused_once_its_frames_are_dropped() {
        let mut pool = ChunkPool::new(256, 8);
        let mut buf = PooledBuf::default();
        let first: Vec<Bytes> = (0..4).map(|i| frame(&mut pool, &mut buf, 60, i)).collect();
        let first_ptr = first[0].as_ptr();
        // The fifth frame does not fit: a second chunk, the first retired.
        let second = frame(&mut pool, &mut buf, 60, 9);
        assert_eq!(pool.stats().allocated, 2);
        assert_eq!(pool.retired(), 1);
        drop(first);
        // Filling the second chunk reclaims the first, in place.
        let more: Vec<Bytes> = (0..4).map(|i| frame(&mut pool, &mut buf, 60, i)).collect();
        assert_eq!(pool.stats().reused, 1);
        assert_eq!(more[3].as_ptr(), first_ptr);
        assert_eq!(pool.stats().allocated, 2);
        assert!(second.iter().all(|&b| b == 9));
    }

    #[test]
    fn a_chunk_with_a_frame_alive_is_never_written() {
        let mut pool = ChunkPool::new(128, 8);
        let mut buf = PooledBuf::default();
        let mut kept = Vec::new();
        for i in 0..200u8 {
            let f = frame(&mut pool, &mut buf, 50, i);
            // Keep every third frame alive, drop the others.
            if i % 3 == 0 {
                kept.push((i, f));
            }
        }
        for (i, f) in &kept {
            assert!(f.iter().all(|b| b == i), "frame {i} kept its bytes");
        }
        let s = pool.stats();
        assert!(s.reused > 0, "chunks without live frames come back: {s:?}");
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound_and_counts_the_rest() {
        let mut pool = ChunkPool::new(100, 3);
        let mut buf = PooledBuf::default();
        let held: Vec<Bytes> = (0..10)
            .map(|i| frame(&mut pool, &mut buf, 100, i))
            .collect();
        assert_eq!(pool.retired(), 3);
        let s = pool.stats();
        assert_eq!((s.allocated, s.reused, s.released), (10, 0, 6));
        assert_eq!(held.len(), 10);
    }

    #[test]
    fn a_packet_being_gathered_moves_with_its_bytes() {
        let mut pool = ChunkPool::new(64, 4);
        let mut buf = PooledBuf::default();
        pool.reserve(&mut buf, 40);
        buf.extend_from_slice(&[7; 40]);
        // A second fragment of the same packet does not fit the chunk's rest.
        pool.reserve(&mut buf, 40);
        buf.extend_from_slice(&[8; 40]);
        let packet = buf.split().freeze();
        assert_eq!(&packet[..40], &[7; 40]);
        assert_eq!(&packet[40..], &[8; 40]);
        assert_eq!(pool.stats().allocated, 2);
    }

    #[test]
    fn a_clone_is_not_pooled_and_a_cloned_pool_is_empty() {
        let mut pool = ChunkPool::new(64, 4);
        let mut buf = PooledBuf::default();
        let _f = frame(&mut pool, &mut buf, 60, 1);
        let _g = frame(&mut pool, &mut buf, 60, 2);
        assert_eq!(pool.retired(), 1);
        assert_eq!(pool.clone().retired(), 0);
        let mut copy = buf.clone();
        let mut other = ChunkPool::new(64, 4);
        other.reserve(&mut copy, 64);
        assert_eq!(other.retired(), 0, "a cloned buffer is not retired");
    }
}
