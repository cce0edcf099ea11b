//! The machine probe: what every report opens with. CPU model, logical CPUs, the cache
//! hierarchy (from `/sys/devices/system/cpu/cpu0/cache`), kernel, virtualisation, whether a
//! PMU (hardware performance counters) is usable, `perf_event_paranoid`, the frequency
//! governor, clocksource, memory, transparent huge pages and the load average.
//!
//! Reads go through a root directory ([`Sources::root`]), so tests run the probe against a
//! fake `/proc` + `/sys` tree; external commands (`systemd-detect-virt`) and the PMU test
//! (`perf_event_open`) are injected for the same reason. A value the machine does not expose
//! is recorded as absent and rendered as "not exposed", never guessed; the cache experiment
//! falls back to *labelled* default sizes when a level is missing ([`CacheSizes`]).
//!
//! Called once per lab invocation by `bin/lab.rs`; the result is part of every JSON file.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// One cache as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheLevel {
    /// 1, 2, 3...
    pub level: u32,
    /// "Data", "Instruction" or "Unified".
    pub kind: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// CPUs sharing it (sysfs `shared_cpu_list`).
    pub shared_cpu_list: Option<String>,
    /// Line size in bytes.
    pub line_bytes: Option<u32>,
}

/// Virtualisation, as far as the guest can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Virtualization {
    /// The `hypervisor` flag in /proc/cpuinfo (set by the CPU when running under a hypervisor).
    pub hypervisor_flag: bool,
    /// Output of `systemd-detect-virt` when it is installed ("none", "kvm", "docker"...).
    pub detect_virt: Option<String>,
}

impl Virtualization {
    /// Whether the machine is a virtual machine or container by any of the signs.
    pub fn virtualised(&self) -> bool {
        self.hypervisor_flag || self.detect_virt.as_deref().is_some_and(|v| v != "none")
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.push(if self.hypervisor_flag {
            "`hypervisor` flag set in /proc/cpuinfo".to_string()
        } else {
            "no `hypervisor` flag in /proc/cpuinfo".to_string()
        });
        match &self.detect_virt {
            Some(v) => parts.push(format!("systemd-detect-virt says `{v}`")),
            None => parts.push("systemd-detect-virt not available".to_string()),
        }
        format!(
            "{} ({})",
            if self.virtualised() { "yes" } else { "no" },
            parts.join("; ")
        )
    }
}

/// Whether hardware performance counters can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pmu {
    /// True when a hardware counter could be opened.
    pub available: bool,
    /// What was tried and what happened.
    pub detail: String,
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs online (sysfs `online` list, expanded).
    pub online_cpus: Vec<usize>,
    /// CPUs this process may run on (its affinity mask).
    pub allowed_cpus: Vec<usize>,
    /// Caches of cpu0.
    pub caches: Vec<CacheLevel>,
    /// Kernel: `uname -srm` equivalent.
    pub kernel: String,
    /// Virtualisation signs.
    pub virtualization: Virtualization,
    /// PMU availability.
    pub pmu: Pmu,
    /// /proc/sys/kernel/perf_event_paranoid.
    pub perf_event_paranoid: Option<i32>,
    /// cpufreq scaling governor of cpu0, if exposed.
    pub governor: Option<String>,
    /// Current clocksource.
    pub clocksource: Option<String>,
    /// Transparent huge pages setting (the bracketed choice).
    pub thp: Option<String>,
    /// MemTotal in bytes.
    pub memory_bytes: Option<u64>,
    /// Load average (1, 5, 15 min) when the probe ran.
    pub load_average: Option<[f64; 3]>,
}

/// Where the probe reads from; [`Sources::real`] for this machine.
pub struct Sources {
    /// Root under which `proc/` and `sys/` are read ("/" for real).
    pub root: PathBuf,
    /// Output of `systemd-detect-virt`, if any.
    pub detect_virt: Option<String>,
    /// The PMU test.
    pub pmu: Pmu,
    /// The affinity mask, if known.
    pub allowed_cpus: Option<Vec<usize>>,
    /// `uname` of the running kernel (used when `proc/sys/kernel/osrelease` is absent).
    pub uname: Option<String>,
}

impl Sources {
    /// The real machine: `/`, `systemd-detect-virt` if installed, a real `perf_event_open`.
    pub fn real() -> Sources {
        let detect_virt = std::process::Command::new("systemd-detect-virt")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty());
        Sources {
            root: PathBuf::from("/"),
            detect_virt,
            pmu: probe_pmu(Path::new("/")),
            allowed_cpus: crate::sys::allowed_cpus().ok(),
            uname: uname(),
        }
    }
}

/// Tests whether a hardware counter opens, and notes whether sysfs lists a `cpu` PMU.
pub fn probe_pmu(root: &Path) -> Pmu {
    let sysfs_cpu_pmu = root.join("sys/bus/event_source/devices/cpu").exists();
    let sysfs_note = if sysfs_cpu_pmu {
        "sysfs lists a `cpu` PMU"
    } else {
        "sysfs lists no `cpu` PMU under /sys/bus/event_source/devices"
    };
    match crate::counters::try_hardware_counter() {
        Ok(what) => Pmu {
            available: true,
            detail: format!("{what}; {sysfs_note}"),
        },
        Err(why) => Pmu {
            available: false,
            detail: format!("{why}; {sysfs_note}"),
        },
    }
}

fn uname() -> Option<String> {
    // SAFETY: all-zero is a valid utsname; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some(format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    ))
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parses a sysfs cache size such as `32K`, `1024K`, `8M`, `1G` or a plain byte count.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1024),
        'M' | 'm' => (&s[..s.len() - 1], 1024 * 1024),
        'G' | 'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// Parses a CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

fn read_caches(root: &Path) -> Vec<CacheLevel> {
    let dir = root.join("sys/devices/system/cpu/cpu0/cache");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut caches: Vec<CacheLevel> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let p = e.path();
            let r = |f: &str| {
                std::fs::read_to_string(p.join(f))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            Some(CacheLevel {
                level: r("level")?.parse().ok()?,
                kind: r("type")?,
                size_bytes: parse_size(&r("size")?)?,
                shared_cpu_list: r("shared_cpu_list"),
                line_bytes: r("coherency_line_size").and_then(|s| s.parse().ok()),
            })
        })
        .collect();
    caches.sort_by(|a, b| (a.level, &a.kind).cmp(&(b.level, &b.kind)));
    caches
}

/// Probes the machine described by `src`.
pub fn probe_with(src: Sources) -> Machine {
    let root = src.root.as_path();
    let cpuinfo = read(root, "proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown (no `model name` in /proc/cpuinfo)".to_string());
    let hypervisor_flag = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    let online_cpus = read(root, "sys/devices/system/cpu/online")
        .and_then(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    let kernel = match (read(root, "proc/sys/kernel/osrelease"), src.uname) {
        (_, Some(u)) => u,
        (Some(rel), None) => format!("Linux {rel}"),
        (None, None) => "unknown".to_string(),
    };
    let memory_bytes = read(root, "proc/meminfo").and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let load_average = read(root, "proc/loadavg").and_then(|l| {
        let v: Vec<f64> = l
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 3).then(|| [v[0], v[1], v[2]])
    });
    let thp = read(root, "sys/kernel/mm/transparent_hugepage/enabled").map(|s| {
        s.split_whitespace()
            .find(|w| w.starts_with('['))
            .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
            .unwrap_or(s)
    });
    Machine {
        cpu_model,
        allowed_cpus: src.allowed_cpus.unwrap_or_else(|| online_cpus.clone()),
        online_cpus,
        caches: read_caches(root),
        kernel,
        virtualization: Virtualization {
            hypervisor_flag,
            detect_virt: src.detect_virt,
        },
        pmu: src.pmu,
        perf_event_paranoid: read(root, "proc/sys/kernel/perf_event_paranoid")
            .and_then(|s| s.parse().ok()),
        governor: read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        clocksource: read(
            root,
            "sys/devices/system/clocksource/clocksource0/current_clocksource",
        ),
        thp,
        memory_bytes,
        load_average,
    }
}

/// Probes this machine.
pub fn probe() -> Machine {
    probe_with(Sources::real())
}

/// The cache sizes the cache experiment sweeps around, with the levels that had to be
/// defaulted named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheSizes {
    /// L1 data cache bytes.
    pub l1d: u64,
    /// L2 bytes.
    pub l2: u64,
    /// Last-level (L3, or L2 when there is no L3) bytes.
    pub llc: u64,
    /// Levels missing from sysfs and replaced by a default, e.g. `"L3 (default 8 MiB)"`.
    pub defaulted: Vec<String>,
}

/// Default sizes used (and labelled as such) when sysfs lacks a level.
pub const DEFAULT_L1D: u64 = 32 * 1024;
/// Default L2 size.
pub const DEFAULT_L2: u64 = 512 * 1024;
/// Default last-level cache size.
pub const DEFAULT_LLC: u64 = 8 * 1024 * 1024;

impl Machine {
    /// The cache sizes for the sweep.
    pub fn cache_sizes(&self) -> CacheSizes {
        let find = |level: u32, data: bool| {
            self.caches
                .iter()
                .find(|c| c.level == level && (c.kind == "Unified" || (data && c.kind == "Data")))
                .map(|c| c.size_bytes)
        };
        let mut defaulted = Vec::new();
        let l1d = find(1, true).unwrap_or_else(|| {
            defaulted.push(format!(
                "L1d (default {})",
                crate::stats::fmt_bytes(DEFAULT_L1D)
            ));
            DEFAULT_L1D
        });
        let l2 = find(2, true).unwrap_or_else(|| {
            defaulted.push(format!(
                "L2 (default {})",
                crate::stats::fmt_bytes(DEFAULT_L2)
            ));
            DEFAULT_L2
        });
        let llc = find(3, true).unwrap_or_else(|| {
            defaulted.push(format!(
                "L3 (default {})",
                crate::stats::fmt_bytes(DEFAULT_LLC)
            ));
            DEFAULT_LLC
        });
        CacheSizes {
            l1d,
            l2,
            llc,
            defaulted,
        }
    }

    /// The cache hierarchy in one line: `L1d 32 KiB, L1i 32 KiB, L2 1 MiB, L3 32 MiB
    /// (shared by CPUs 0-1)`.
    pub fn caches_line(&self) -> String {
        if self.caches.is_empty() {
            return "not exposed (no /sys/devices/system/cpu/cpu0/cache)".to_string();
        }
        self.caches
            .iter()
            .map(|c| {
                let name = match c.kind.as_str() {
                    "Data" => format!("L{}d", c.level),
                    "Instruction" => format!("L{}i", c.level),
                    _ => format!("L{}", c.level),
                };
                let shared = match &c.shared_cpu_list {
                    Some(l) if parse_cpu_list(l).is_some_and(|v| v.len() > 1) => {
                        format!(" (shared by CPUs {l})")
                    }
                    _ => String::new(),
                };
                format!("{name} {}{shared}", crate::stats::fmt_bytes(c.size_bytes))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The one-line machine summary used above headline tables.
    pub fn one_line(&self) -> String {
        format!(
            "{}, {} logical CPUs, {}, {}, {}, PMU {}",
            self.cpu_model,
            self.online_cpus.len(),
            self.caches_line(),
            self.kernel,
            if self.virtualization.virtualised() {
                "virtualised"
            } else {
                "bare metal"
            },
            if self.pmu.available {
                "available"
            } else {
                "not available"
            }
        )
    }
}
