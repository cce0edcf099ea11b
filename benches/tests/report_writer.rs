//! The report writer: markdown structure, honesty statements (mode, repetitions, missing
//! peers, pending rows, flags), JSON and SVG files.

use benches::peers::Peer;
use benches::plot::{Bar, HBars, Lines, PlotSpec, Series};
use benches::probe::{self, Pmu, Sources};
use benches::report::{self, Plot, Report, RunInfo, Section, Table};

fn machine() -> benches::probe::Machine {
    let root = std::env::temp_dir().join(format!("lab-report-root-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&root);
    let m = probe::probe_with(Sources {
        root: root.clone(),
        detect_virt: Some("kvm".into()),
        pmu: Pmu {
            available: false,
            detail: "perf_event_open(PERF_COUNT_HW_INSTRUCTIONS) failed: ENOENT".into(),
        },
        allowed_cpus: Some(vec![0, 1]),
        uname: Some("Linux 6.1.0 x86_64".into()),
    });
    let _ = std::fs::remove_dir_all(&root);
    m
}

fn sample_report() -> Report {
    let mut t = Table::new(&["operation", "median | per op"]);
    t.row(vec!["ULT spawn|join".into(), "120 ns".into()]);
    t.row(vec![
        "2 ULTs, channel".into(),
        "**pending**: lwp runtime not built yet".into(),
    ]);
    let section = Section {
        id: "create".into(),
        title: "Creation cost".into(),
        command: "lab create".into(),
        claim: "threads are cheaper than processes".into(),
        measured: vec!["spawn + join".into()],
        tables: vec![t],
        plots: vec![
            Plot {
                file: "create.svg".into(),
                alt: "bars".into(),
                spec: PlotSpec::HBars(HBars {
                    title: "bars".into(),
                    axis: "time".into(),
                    bars: vec![
                        Bar {
                            label: "ULT".into(),
                            value: 120.0,
                            min: 100.0,
                            max: 150.0,
                            group: 0,
                            text: "120 ns".into(),
                        },
                        Bar {
                            label: "pending row (pending)".into(),
                            value: f64::NAN,
                            min: f64::NAN,
                            max: f64::NAN,
                            group: 0,
                            text: String::new(),
                        },
                    ],
                    groups: vec!["ours".into()],
                }),
            },
            Plot {
                file: "lines.svg".into(),
                alt: "lines".into(),
                spec: PlotSpec::Lines(Lines {
                    title: "lines".into(),
                    x_axis: "bytes".into(),
                    y_axis: "share".into(),
                    log_y: false,
                    percent_y: true,
                    series: vec![Series {
                        name: "ULT".into(),
                        points: vec![
                            (0.0, 0.0, 0.0, 0.0),
                            (4096.0, 0.5, 0.4, 0.6),
                            (1e6, 0.9, f64::NAN, 0.95),
                        ],
                    }],
                    markers: vec![(32768.0, "L1d".into())],
                    reference: Some((0.8, "lecture: 80%".into())),
                    levels: vec![],
                }),
            },
        ],
        findings: vec!["a kernel thread costs 200x a ULT".into()],
        flags: vec!["something looked impossible".into()],
        notes: vec!["a note".into()],
        raw: serde_json::json!({"values": [1.0, 2.0]}),
    };
    let mut headline = Table::new(&["operation", "user-level thread"]);
    headline.row(vec!["create".into(), "120 ns".into()]);
    let mut green = Table::new(&["issue 2 target", "verdict"]);
    green.row(vec!["yield at most 3x raw".into(), "**FAIL**".into()]);
    Report {
        machine: machine(),
        peers: vec![Peer {
            name: "go".into(),
            present: false,
            version: None,
            note: "missing: `go` is not on PATH".into(),
            used_by: "create".into(),
        }],
        run: RunInfo {
            command: "cargo run --release -p benches --bin lab".into(),
            mode: "quick".into(),
            repetitions: "Repetitions: create 11 per row.".into(),
            started_utc: "2026-01-02 03:04:05".into(),
            wall_seconds: 61.0,
            pinning: "CPU 0".into(),
            lab_version: "0.1.0".into(),
        },
        headline: Some((headline, "Medians of this run on: a test machine.".into())),
        green_thread_targets: Some(green),
        run_flags: vec!["the machine was busy".into()],
        sections: vec![section],
        not_run: vec![("cache".into(), "Indirect cost".into())],
    }
}

#[test]
fn markdown_opens_with_the_run_and_the_machine_and_keeps_every_statement() {
    let md = report::render(&sample_report());
    let machine_at = md.find("## The machine").unwrap();
    let first_section = md.find("## 1. Creation cost").unwrap();
    assert!(machine_at < first_section);
    assert!(md.starts_with("# twolevel lab report"));
    assert!(md.contains("**quick** mode"));
    assert!(md.contains("Repetitions: create 11 per row."));
    assert!(md.contains("2026-01-02 03:04:05 UTC"));
    assert!(md.contains("**not available**"), "PMU absence is stated");
    // Missing peers are named, never dropped.
    assert!(md.contains("| go | **missing** |"));
    // Pending rows stay visible.
    assert!(md.contains("**pending**: lwp runtime not built yet"));
    // Flags are collected at the top and repeated in their section.
    let flags_at = md.find("## Flags raised by this run").unwrap();
    assert!(flags_at < first_section);
    assert!(md.contains("- the machine was busy"));
    assert!(md.contains("- `create`: something looked impossible"));
    // The experiment that did not run is listed as such.
    assert!(md.contains("## Not run in this invocation"));
    assert!(md.contains("(`lab cache`)"));
    // The headline and its provenance.
    assert!(md.contains("## Headline"));
    assert!(md.contains("Medians of this run on: a test machine."));
    // Issue 2's targets sit under the headline, before the flags.
    let green_at = md.find("| yield at most 3x raw | **FAIL** |").unwrap();
    assert!(md.find("## Headline").unwrap() < green_at);
    assert!(green_at < md.find("## Flags raised by this run").unwrap());
    assert!(md.contains("![bars](create.svg)"));
    assert!(md.contains("**What the numbers say.**"));
}

#[test]
fn table_cells_are_escaped_and_rows_padded() {
    let mut t = Table::new(&["a", "b", "c"]);
    t.row(vec!["x|y".into()]);
    let md = t.to_markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "| a | b | c |");
    assert_eq!(lines[1], "|---|---|---|");
    assert_eq!(lines[2], "| x\\|y |  |  |");
}

#[test]
fn write_produces_markdown_json_and_svg_files() {
    let dir = std::env::temp_dir().join(format!("lab-report-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = report::write(&dir, &sample_report()).unwrap();
    for name in [
        "REPORT.md",
        "machine.json",
        "create.json",
        "create.svg",
        "lines.svg",
    ] {
        assert!(dir.join(name).is_file(), "{name} missing; wrote {files:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("create.json")).unwrap()).unwrap();
    assert_eq!(json["experiment"], "create");
    assert_eq!(json["run"]["mode"], "quick");
    assert_eq!(json["raw"]["values"][1], 2.0);
    assert_eq!(json["machine"]["pmu"]["available"], false);
    let machine: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("machine.json")).unwrap()).unwrap();
    assert_eq!(machine["peers"][0]["present"], false);
    let svg = std::fs::read_to_string(dir.join("create.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(
        svg.contains("<text"),
        "labels are SVG text, no fonts needed"
    );
    assert!(svg.contains("ULT"));
    assert!(svg.contains("Not drawn (no measurement): pending row (pending)"));
    let lines = std::fs::read_to_string(dir.join("lines.svg")).unwrap();
    assert!(lines.contains("lecture: 80%"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn utc_dates_are_computed_without_a_date_library() {
    use std::time::{Duration, UNIX_EPOCH};
    assert_eq!(report::utc_timestamp(UNIX_EPOCH), "1970-01-01 00:00:00");
    // 2000-02-29 12:34:56 UTC = 951827696
    assert_eq!(
        report::utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_827_696)),
        "2000-02-29 12:34:56"
    );
    assert_eq!(report::civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(report::cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    assert_eq!(report::cpu_list(&[]), "none");
}
