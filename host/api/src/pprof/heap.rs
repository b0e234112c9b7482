//! `/debug/pprof/heap` from jemalloc's heap profiler: its sampled live allocations dumped with
//! `prof.dump`, read back (jemalloc's `heap_v2` text), scaled up as jeprof scales them,
//! symbolized in this process, and written as Go's pprof heap profile (`inuse_objects`,
//! `inuse_space`).
//!
//! Our own reader rather than `jemalloc_pprof`: that crate's pprof encoder turns prost's
//! recursion limit off for every crate in the binary (a cargo feature is global), and the limit
//! is what keeps a deeply nested request from a client from overflowing the stack
//! (docs/decisions.md).

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write as _};

use pprof::protos;

/// A stack and what jemalloc sampled for it: objects and bytes still allocated.
struct Sampled {
    addrs: Vec<u64>,
    objects: f64,
    bytes: f64,
}

/// Whether this process's allocator is jemalloc with its profiler built in (`opt.prof`).
fn built_in() -> bool {
    // SAFETY: `opt.prof` is a bool jemalloc documents as readable; a jemalloc built without
    // the profiler answers ENOENT, which is an Err here.
    unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"opt.prof\0") }.unwrap_or(false)
}

/// Whether the profiler is sampling now (`prof.active`).
pub fn active() -> bool {
    // SAFETY: `prof.active` is a readable bool when the profiler is built in.
    built_in() && unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"prof.active\0") }.unwrap_or(false)
}

/// Switches the profiler on. Fails when the allocator is not jemalloc with its profiler built
/// in (a test binary with the system allocator, say).
pub fn activate() -> Result<(), String> {
    if !built_in() {
        return Err(UNAVAILABLE.to_string());
    }
    // SAFETY: `prof.active` is a writable bool when the profiler is built in.
    unsafe { tikv_jemalloc_ctl::raw::write(b"prof.active\0", true) }
        .map_err(|e| format!("activating jemalloc's heap profiler: {e}"))
}

pub const UNAVAILABLE: &str = "heap profile unavailable: the allocator is not jemalloc with its profiler built in";

/// The live heap now, as a gzipped pprof protobuf. Blocking: jemalloc writes a file, and
/// symbolizing reads debug info.
pub fn dump() -> Result<Vec<u8>, String> {
    let file = tempfile::NamedTempFile::new().map_err(|e| format!("a file for jemalloc's dump: {e}"))?;
    let path = CString::new(file.path().as_os_str().as_encoded_bytes())
        .map_err(|_| "the temporary file's path holds a NUL byte".to_string())?;
    // SAFETY: `prof.dump` takes a NUL-terminated path, which `path` is and outlives the call.
    unsafe { tikv_jemalloc_ctl::raw::write(b"prof.dump\0", path.as_ptr()) }
        .map_err(|e| format!("jemalloc's prof.dump: {e}"))?;
    let (rate, stacks) = parse(BufReader::new(file.reopen().map_err(|e| e.to_string())?))?;
    let raw = protos::Message::write_to_bytes(&profile(rate, &stacks)).map_err(|e| e.to_string())?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).map_err(|e| e.to_string())?;
    gz.finish().map_err(|e| e.to_string())
}

/// jemalloc's `heap_v2/<rate>` dump: `@ <addr>…` stack lines, each followed by its
/// `t*: <objects>: <bytes> [<cumulative objects>: <cumulative bytes>]` total, then the
/// process's mappings (not needed: symbols are resolved here).
fn parse(r: impl BufRead) -> Result<(f64, Vec<Sampled>), String> {
    let mut lines = r.lines();
    let first = lines.next().ok_or("an empty heap dump")?.map_err(|e| e.to_string())?;
    let rate: f64 = first
        .trim()
        .strip_prefix("heap_v2/")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("not a heap_v2 dump: {first:?}"))?;
    let mut stacks = Vec::new();
    let mut current: Option<Vec<u64>> = None;
    for line in lines {
        let line = line.map_err(|e| e.to_string())?;
        let line = line.trim();
        if line == "MAPPED_LIBRARIES:" {
            break;
        }
        if let Some(rest) = line.strip_prefix("@ ") {
            let addrs = rest
                .split_whitespace()
                .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("a stack address in {line:?}: {e}"))?;
            current = Some(addrs);
        } else if let Some(rest) = line.strip_prefix("t*: ")
            && let Some(addrs) = current.take()
        {
            let mut fields = rest.split(|c: char| c == ':' || c.is_whitespace()).filter(|f| !f.is_empty());
            let mut number = || fields.next().and_then(|f| f.parse::<f64>().ok());
            let (Some(objects), Some(bytes)) = (number(), number()) else {
                return Err(format!("a stack's totals: {line:?}"));
            };
            if objects > 0.0 {
                stacks.push(Sampled { addrs, objects, bytes });
            }
        }
    }
    Ok((rate, stacks))
}

/// The sampled counts scaled to estimates of the whole heap, as jeprof's `AdjustSamples` (and
/// Go's `scaleHeapSample`) do: an allocation of `size` bytes is sampled with probability
/// `1 - e^(-size/rate)`.
fn unbiased(s: &Sampled, rate: f64) -> (i64, i64) {
    if rate <= 0.0 {
        return (s.objects as i64, s.bytes as i64);
    }
    let scale = 1.0 / (1.0 - (-(s.bytes / s.objects) / rate).exp());
    ((s.objects * scale) as i64, (s.bytes * scale) as i64)
}

/// Strings, functions and locations shared by the samples, interned as pprof wants them.
#[derive(Default)]
struct Tables {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<protos::Function>,
    function_ids: HashMap<String, u64>,
    locations: Vec<protos::Location>,
    location_ids: HashMap<u64, u64>,
}

impl Tables {
    fn string(&mut self, s: &str) -> i64 {
        if self.strings.is_empty() {
            self.strings.push(String::new());
            self.string_ids.insert(String::new(), 0);
        }
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn function(&mut self, name: &str, system_name: &str, filename: &str) -> u64 {
        if let Some(id) = self.function_ids.get(name) {
            return *id;
        }
        let id = self.functions.len() as u64 + 1;
        let f = protos::Function {
            id,
            name: self.string(name),
            system_name: self.string(system_name),
            filename: self.string(filename),
            ..Default::default()
        };
        self.functions.push(f);
        self.function_ids.insert(name.to_string(), id);
        id
    }

    /// The location of a return address, symbolized (inlined frames innermost first).
    fn location(&mut self, addr: u64) -> u64 {
        if let Some(id) = self.location_ids.get(&addr) {
            return *id;
        }
        let mut frames = Vec::new();
        // A return address points after the call: one byte back is inside it.
        backtrace::resolve(addr.saturating_sub(1) as usize as *mut std::ffi::c_void, |sym| {
            let name = sym.name().map(|n| format!("{n:#}")).unwrap_or_else(|| format!("{addr:#x}"));
            let system = sym.name().map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned()).unwrap_or_default();
            let file = sym.filename().map(|f| f.display().to_string()).unwrap_or_default();
            frames.push((name, system, file, sym.lineno().unwrap_or(0)));
        });
        if frames.is_empty() {
            frames.push((format!("{addr:#x}"), String::new(), String::new(), 0));
        }
        let line = frames
            .iter()
            .map(|(name, system, file, lineno)| protos::Line {
                function_id: self.function(name, system, file),
                line: i64::from(*lineno),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let id = self.locations.len() as u64 + 1;
        self.locations.push(protos::Location { id, address: addr, line, ..Default::default() });
        self.location_ids.insert(addr, id);
        id
    }
}

/// Frames of the allocator itself, which every stack starts with: left out, so a stack's leaf
/// is the code that allocated, as in Go's heap profile.
const ALLOCATOR_FRAMES: &[&str] = &[
    "prof_",
    "_rjem_",
    "je_",
    "imalloc",
    "malloc_default",
    "tikv_jemallocator",
    "<tikv_jemallocator",
    "__rust_alloc",
    "__rustc::",
    "__rdl_",
    "alloc::alloc::",
    "<alloc::alloc::Global",
];

impl Tables {
    fn in_allocator(&self, location: u64) -> bool {
        let Some(loc) = location.checked_sub(1).and_then(|i| self.locations.get(i as usize)) else { return false };
        loc.line.iter().any(|l| {
            let f = l.function_id.checked_sub(1).and_then(|i| self.functions.get(i as usize));
            let name = f.and_then(|f| self.strings.get(f.name as usize)).map_or("", String::as_str);
            ALLOCATOR_FRAMES.iter().any(|p| name.starts_with(p))
        })
    }
}

fn profile(rate: f64, stacks: &[Sampled]) -> protos::Profile {
    let mut t = Tables::default();
    let value_type = |t: &mut Tables, ty: &str, unit: &str| protos::ValueType {
        ty: t.string(ty),
        unit: t.string(unit),
        ..Default::default()
    };
    let sample_type = vec![value_type(&mut t, "inuse_objects", "count"), value_type(&mut t, "inuse_space", "bytes")];
    let period_type = value_type(&mut t, "space", "bytes");
    let mut samples = Vec::with_capacity(stacks.len());
    for s in stacks {
        let all: Vec<u64> = s.addrs.iter().map(|a| t.location(*a)).collect();
        let skip = all.iter().take_while(|l| t.in_allocator(**l)).count();
        let location_id = all[skip..].to_vec();
        let (objects, bytes) = unbiased(s, rate);
        samples.push(protos::Sample { location_id, value: vec![objects, bytes], ..Default::default() });
    }
    let time_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    protos::Profile {
        sample_type,
        sample: samples,
        location: t.locations,
        function: t.functions,
        string_table: t.strings,
        time_nanos,
        period_type: Some(period_type).into(),
        period: rate as i64,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump as jemalloc 5.3 writes it (two stacks, one with nothing live left).
    const DUMP: &str = "heap_v2/524288\n  t*: 3: 1572864 [0: 0]\n  t0: 3: 1572864 [0: 0]\n\
        @ 0x55d0c0a1 0x55d0c0b2 0x55d0c0c3\n  t*: 2: 1048576 [0: 0]\n  t0: 2: 1048576 [0: 0]\n\
        @ 0x55d0c0a1 0x55d0c0d4\n  t*: 0: 0 [0: 0]\n\nMAPPED_LIBRARIES:\n55d0c000-55d0d000 r-xp 00000000 08:01 1 /bin/x\n";

    #[test]
    fn a_heap_v2_dump_reads_as_its_stacks_scaled() {
        let (rate, stacks) = parse(DUMP.as_bytes()).expect("parse");
        assert_eq!(rate, 524288.0);
        assert_eq!(stacks.len(), 1, "a stack with no live objects is left out");
        assert_eq!(stacks[0].addrs, [0x55d0c0a1, 0x55d0c0b2, 0x55d0c0c3]);
        // Two 512 KiB allocations: each sampled with probability 1 - e^-1.
        let (objects, bytes) = unbiased(&stacks[0], rate);
        let expected = 1048576.0 / (1.0 - (-1.0f64).exp());
        assert_eq!(bytes, expected as i64);
        assert_eq!(objects, (2.0 / (1.0 - (-1.0f64).exp())) as i64);
        let p = profile(rate, &stacks);
        let name = |i: i64| p.string_table[i as usize].clone();
        let types: Vec<String> = p.sample_type.iter().map(|t| format!("{}/{}", name(t.ty), name(t.unit))).collect();
        assert_eq!(types, ["inuse_objects/count", "inuse_space/bytes"]);
        assert_eq!(p.sample[0].location_id.len(), 3);
        assert_eq!(p.location.len(), 3);
    }

    #[test]
    fn what_is_not_a_dump_is_an_error() {
        assert!(parse("".as_bytes()).is_err());
        assert!(parse("heap_v1/x\n".as_bytes()).is_err());
        assert!(parse("heap_v2/524288\n@ 0xzz\n".as_bytes()).is_err());
        assert!(parse("heap_v2/524288\n@ 0x1\n  t*: many\n".as_bytes()).is_err());
    }
}
