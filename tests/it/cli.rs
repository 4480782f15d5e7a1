//! The command line: configuration errors and data directories that are not ours.

use std::process::Command;

fn daehwa(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .args(args)
        .output()
        .expect("run daehwa");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unknown_and_bad_keys_exit_2_naming_the_key() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let cases = [
        ("[server]\nbindd = \"127.0.0.1:0\"\n", "bindd"),
        ("[stroage]\n", "stroage"),
        ("[server]\nbind = \"not an address\"\n", "bind"),
        ("[storage]\nflush_interval = \"soon\"\n", "flush_interval"),
        (
            "[storage]\nflush_interval = \"10ms\"\n",
            "storage.flush_interval",
        ),
        ("[limits]\nhistory_page_max = -1\n", "history_page_max"),
        ("[log]\nformat = \"xml\"\n", "format"),
    ];
    for (text, key) in cases {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, text).expect("write");
        let (code, stderr) = daehwa(&[
            "serve",
            "--config",
            file.to_str().expect("path"),
            "--data-dir",
            data.to_str().expect("path"),
        ]);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(key),
            "{text}: the error should name {key}: {stderr}"
        );
    }
    assert!(
        !data.exists(),
        "nothing may be opened before the config is valid"
    );

    let (code, stderr) = daehwa(&["serve", "--config", "/nonexistent/daehwa.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _) = daehwa(&["serve", "--bogus-flag"]);
    assert_eq!(code, Some(2));
}

#[test]
fn a_directory_that_is_not_ours_is_refused_and_left_alone() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let precious = tmp.path().join("notes.txt");
    std::fs::write(&precious, "do not touch").expect("write");
    let (code, stderr) = daehwa(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        tmp.path().to_str().expect("path"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    let entries: Vec<_> = std::fs::read_dir(tmp.path()).expect("read").collect();
    assert_eq!(
        entries.len(),
        1,
        "nothing may be written beside the user's files"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("read"),
        "do not touch"
    );
}

#[test]
fn version() {
    let output = Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("daehwa "));
}

#[test]
fn a_sled_database_of_another_program_is_refused() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let dir = tmp.path().join("other");
    {
        let db = sled::open(&dir).expect("sled");
        db.open_tree("accounts")
            .expect("tree")
            .insert(b"k", b"v")
            .expect("insert");
        db.flush().expect("flush");
    }
    let (code, stderr) = daehwa(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().expect("path"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a daehwa one"), "{stderr}");
    let db = sled::open(&dir).expect("sled");
    assert!(
        !db.tree_names().iter().any(|n| n.as_ref() == b"meta"),
        "nothing was written"
    );
}

#[test]
fn a_data_dir_that_cannot_be_opened_is_a_clear_error() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let (code, stderr) = daehwa(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        file.to_str().expect("path"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "not a directory"
    );
}
