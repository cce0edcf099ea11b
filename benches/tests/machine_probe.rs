//! The machine probe, against a fake /proc + /sys tree (a VM without a PMU and with a
//! partial cache hierarchy) and against this machine.

use benches::probe::{self, parse_cpu_list, parse_size, Pmu, Sources};
use benches::report::machine_table;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lab-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn cache(root: &Path, idx: u32, level: u32, kind: &str, size: &str, shared: &str) {
    let d = format!("sys/devices/system/cpu/cpu0/cache/index{idx}");
    put(root, &format!("{d}/level"), &format!("{level}\n"));
    put(root, &format!("{d}/type"), &format!("{kind}\n"));
    put(root, &format!("{d}/size"), &format!("{size}\n"));
    put(
        root,
        &format!("{d}/shared_cpu_list"),
        &format!("{shared}\n"),
    );
    put(root, &format!("{d}/coherency_line_size"), "64\n");
}

/// A KVM guest: hypervisor flag, no PMU, no cpufreq, L1d/L1i/L2 only (no L3 exposed).
fn fake_vm(name: &str) -> PathBuf {
    let root = scratch(name);
    put(
        &root,
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 hypervisor avx2\n\n\
         processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 hypervisor avx2\n",
    );
    put(&root, "sys/devices/system/cpu/online", "0-1\n");
    put(&root, "proc/sys/kernel/osrelease", "6.1.0-test\n");
    put(&root, "proc/sys/kernel/perf_event_paranoid", "2\n");
    put(
        &root,
        "proc/meminfo",
        "MemTotal:       2048000 kB\nMemFree: 1 kB\n",
    );
    put(&root, "proc/loadavg", "0.10 0.20 0.30 1/100 42\n");
    put(
        &root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never\n",
    );
    cache(&root, 0, 1, "Data", "48K", "0");
    cache(&root, 1, 1, "Instruction", "32K", "0");
    cache(&root, 2, 2, "Unified", "2048K", "0-1");
    root
}

fn no_pmu() -> Pmu {
    Pmu {
        available: false,
        detail: "perf_event_open(PERF_COUNT_HW_INSTRUCTIONS) failed: No such file or directory (os error 2)".into(),
    }
}

#[test]
fn probe_reads_a_vm_without_a_pmu() {
    let root = fake_vm("vm");
    let m = probe::probe_with(Sources {
        root: root.clone(),
        detect_virt: Some("kvm".into()),
        pmu: no_pmu(),
        allowed_cpus: None,
        uname: None,
    });
    assert_eq!(m.cpu_model, "Test CPU 9000");
    assert_eq!(m.online_cpus, vec![0, 1]);
    assert_eq!(m.allowed_cpus, vec![0, 1]);
    assert_eq!(m.kernel, "Linux 6.1.0-test");
    assert!(m.virtualization.hypervisor_flag);
    assert!(m.virtualization.virtualised());
    assert!(m.virtualization.describe().contains("kvm"));
    assert!(!m.pmu.available);
    assert_eq!(m.perf_event_paranoid, Some(2));
    assert_eq!(m.governor, None);
    assert_eq!(m.thp.as_deref(), Some("madvise"));
    assert_eq!(m.memory_bytes, Some(2_048_000 * 1024));
    assert_eq!(m.load_average, Some([0.10, 0.20, 0.30]));
    assert_eq!(m.caches.len(), 3);
    assert_eq!(
        m.caches_line(),
        "L1d 48 KiB, L1i 32 KiB, L2 2 MiB (shared by CPUs 0-1)"
    );

    // The report says so, plainly.
    let table = machine_table(&m, "CPU 0").to_markdown();
    assert!(table.contains("**not available**"), "{table}");
    assert!(table.contains("timings stand alone"), "{table}");
    assert!(
        table.contains("not exposed (no cpufreq in sysfs)"),
        "{table}"
    );
    assert!(m.one_line().contains("PMU not available"));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn missing_cache_levels_get_labelled_defaults() {
    let root = fake_vm("defaults");
    let m = probe::probe_with(Sources {
        root: root.clone(),
        detect_virt: None,
        pmu: no_pmu(),
        allowed_cpus: Some(vec![1]),
        uname: Some("Linux 6.1.0-test x86_64".into()),
    });
    let c = m.cache_sizes();
    assert_eq!(c.l1d, 48 * 1024);
    assert_eq!(c.l2, 2 * 1024 * 1024);
    assert_eq!(c.llc, probe::DEFAULT_LLC);
    assert_eq!(c.defaulted, vec!["L3 (default 8 MiB)".to_string()]);
    assert_eq!(m.allowed_cpus, vec![1]);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn an_empty_root_gives_unknowns_not_panics() {
    let root = scratch("empty");
    let m = probe::probe_with(Sources {
        root: root.clone(),
        detect_virt: None,
        pmu: no_pmu(),
        allowed_cpus: None,
        uname: None,
    });
    assert!(m.cpu_model.starts_with("unknown"));
    assert!(m.caches.is_empty());
    assert!(m.caches_line().starts_with("not exposed"));
    assert_eq!(m.cache_sizes().defaulted.len(), 3);
    assert!(!m.virtualization.virtualised());
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn sizes_and_cpu_lists_parse_like_sysfs_writes_them() {
    assert_eq!(parse_size("32K"), Some(32 * 1024));
    assert_eq!(parse_size("32768K"), Some(32 * 1024 * 1024));
    assert_eq!(parse_size("8M"), Some(8 * 1024 * 1024));
    assert_eq!(parse_size("512"), Some(512));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(
        parse_cpu_list("0-3,8,10-11"),
        Some(vec![0, 1, 2, 3, 8, 10, 11])
    );
    assert_eq!(parse_cpu_list("0"), Some(vec![0]));
    assert_eq!(parse_cpu_list("3-1"), None);
}

#[test]
fn probe_of_this_machine_is_complete_and_honest_about_the_pmu() {
    let m = probe::probe();
    assert!(!m.online_cpus.is_empty());
    assert!(!m.allowed_cpus.is_empty());
    assert!(!m.kernel.is_empty());
    assert!(m.pmu.detail.contains("perf_event_open"));
    // Without a `cpu` PMU in sysfs no hardware counter can open (the development VM).
    if !Path::new("/sys/bus/event_source/devices/cpu").exists() {
        assert!(!m.pmu.available, "{}", m.pmu.detail);
        assert!(machine_table(&m, "-")
            .to_markdown()
            .contains("**not available**"));
    }
}
