//! A panic inside a ULT is reported with the ULT's name and id after std's message (which
//! names only the kernel thread); panics outside ULTs are reported as before, once each.

mod common;

const CHILD: &str = "ULT_PANIC_NAMES_CHILD";

#[test]
fn a_ult_panic_names_the_ult_after_stds_message() {
    if std::env::var_os(CHILD).is_some() {
        ult::run(|| {
            let named = ult::Builder::new()
                .name("worker-7".into())
                .spawn(|| panic!("named boom"))
                .unwrap();
            assert!(named.join().is_err());
            assert!(ult::spawn(|| panic!("unnamed boom")).join().is_err());
        });
        let outside = std::panic::catch_unwind(|| panic!("outside boom"));
        assert!(outside.is_err());
        return;
    }
    let out = common::run_child("a_ult_panic_names_the_ult_after_stds_message", CHILD, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stderr}");
    let named_msg = stderr.find("named boom").expect("std's message");
    let named_note = stderr
        .find("note: that panic was in ULT 'worker-7' (ULT #")
        .expect("the named ULT's note");
    assert!(
        named_msg < named_note,
        "the note follows std's message:\n{stderr}"
    );
    let unnamed_msg = stderr.find("unnamed boom").expect("std's message");
    let unnamed_note = stderr[unnamed_msg..]
        .find("(unnamed)")
        .expect("the unnamed ULT's note");
    assert!(unnamed_note > 0);
    let outside = stderr.find("outside boom").expect("std's message");
    assert!(
        !stderr[outside..].contains("note: that panic was in ULT"),
        "no note outside ULTs:\n{stderr}"
    );
    assert_eq!(stderr.matches("note: that panic was in ULT").count(), 2);
}
