//! The S3 store against a real Garage server on loopback: round trip,
//! catalog-only visibility, garbage collection, and the server killed and
//! restarted in the middle of uploads: nothing lost, nothing half-visible.
//!
//! Needs the `garage` binary (`cargo install garage --locked`, or
//! `REWIND_GARAGE`); `.ci/run` installs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rewind_history::store::{
    RetryPolicy, S3Config, SegmentMeta, SnapshotMeta, Store, StoreConfig, StoreError,
};
use rewind_tests::garage::Garage;

fn config(g: &Garage, prefix: &str) -> StoreConfig {
    StoreConfig::S3(S3Config {
        endpoint: Some(g.endpoint()),
        bucket: g.bucket().to_owned(),
        prefix: prefix.to_owned(),
        region: "garage".into(),
        credentials_file: Some(g.credentials_file()),
        ca_file: None,
        allow_http: true,
        path_style: true,
    })
}

/// Deterministic, poorly compressible bytes.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn seg_meta(i: u64) -> SegmentMeta {
    SegmentMeta {
        first_seq: i * 100 + 1,
        last_seq: i * 100 + 100,
        first_time_ms: 1_000 + i64::try_from(i).unwrap(),
        last_time_ms: 2_000 + i64::try_from(i).unwrap(),
        events: 100,
        encrypted: false,
        resource_set: None,
    }
}

async fn start_garage() -> Garage {
    tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_catalog_visibility_and_garbage() {
    let g = start_garage().await;
    let store = Store::open(&config(&g, "clusters/a")).await.unwrap();
    assert!(store.list_snapshots().await.unwrap().is_empty());

    let mut expected = Vec::new();
    for i in 0..3 {
        let data = payload(i, 200_000 + usize::try_from(i).unwrap() * 1000);
        let e = store
            .put_segment(seg_meta(i), data.clone().into())
            .await
            .unwrap();
        expected.push((e, data));
    }
    let snap_data = payload(99, 1_500_000);
    let snap = store
        .put_snapshot(
            SnapshotMeta {
                seq: 300,
                time_ms: 5_000,
                objects: 1234,
                label: Some("before-upgrade".into()),
                encrypted: false,
                resource_set: None,
            },
            snap_data.clone().into(),
        )
        .await
        .unwrap();

    let segs = store.list_segments().await.unwrap();
    assert_eq!(
        segs,
        expected.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>()
    );
    for (e, data) in &expected {
        assert_eq!(&store.get_segment(e).await.unwrap()[..], &data[..]);
    }
    let snaps = store.list_snapshots().await.unwrap();
    assert_eq!(snaps, vec![snap.clone()]);
    assert_eq!(snaps[0].objects, 1234);
    assert_eq!(snaps[0].label.as_deref(), Some("before-upgrade"));
    assert_eq!(
        &store.get_snapshot(&snap).await.unwrap()[..],
        &snap_data[..]
    );

    // A data object without its catalog entry (a crashed upload) is invisible,
    // and garbage once older than the grace period.
    let orphan = format!("snapshots/{:020}-{}.snap", 400, "ab".repeat(32));
    store
        .put_object(&orphan, payload(7, 1000).into())
        .await
        .unwrap();
    assert_eq!(store.list_snapshots().await.unwrap().len(), 1);
    let now = rewind_history::now_ms();
    let young = store.collect_garbage(now, 3_600_000, true).await.unwrap();
    assert!(
        young.orphans.is_empty(),
        "a fresh upload is not garbage yet"
    );
    let report = store
        .collect_garbage(now + 7_200_000, 3_600_000, false)
        .await
        .unwrap();
    assert_eq!(
        report
            .orphans
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        vec![orphan.as_str()]
    );
    assert!(matches!(
        store.get_object(&orphan).await,
        Err(StoreError::NotFound { .. })
    ));
    // The catalogued objects survived the collection.
    assert_eq!(store.list_segments().await.unwrap().len(), 3);

    // A tampered object is detected on read.
    store
        .put_object(&expected[0].0.data_key(), payload(8, 10).into())
        .await
        .unwrap();
    assert!(matches!(
        store.get_segment(&expected[0].0).await,
        Err(StoreError::Mismatch { .. })
    ));

    // Prefixes isolate clusters sharing a bucket.
    let other = Store::open(&config(&g, "clusters/b")).await.unwrap();
    assert!(other.list_segments().await.unwrap().is_empty());

    // Deleting removes the entry first, then the data.
    store.delete_snapshot(&snap).await.unwrap();
    assert!(store.list_snapshots().await.unwrap().is_empty());
    assert!(matches!(
        store.get_object(&snap.data_key()).await,
        Err(StoreError::NotFound { .. })
    ));

    // Wrong credentials are a permanent, typed error, not an endless retry.
    let bad_creds = g.dir().join("bad-credentials");
    std::fs::write(
        &bad_creds,
        "access_key_id = GK000000000000000000000000\nsecret_access_key = nope\n",
    )
    .unwrap();
    let StoreConfig::S3(mut bad) = config(&g, "clusters/a") else {
        unreachable!()
    };
    bad.credentials_file = Some(bad_creds);
    let bad = Store::open(&StoreConfig::S3(bad)).await.unwrap();
    // Regression: the refusal came wrapped in object_store's `Generic` and
    // was retried eight times (~20 s) before the operator saw it.
    let refused = bad.list_segments().await.unwrap_err();
    assert!(
        !matches!(refused, StoreError::Unavailable { .. }),
        "a refused credential was retried: {refused}"
    );
    assert_eq!(refused.http_status(), Some(403), "{refused}");
    assert_eq!(bad.retried(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_mid_upload_loses_nothing_and_shows_nothing_half_written() {
    let mut g = start_garage().await;
    let cfg = config(&g, "");
    // Enough retries to ride out a restart of a few seconds.
    let retry = RetryPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(2),
        max_attempts: 40,
    };
    let store = Store::open_with(&cfg, retry).await.unwrap();
    const N: u64 = 16;
    let started = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let uploader = {
        let (store, started, done) = (store.clone(), Arc::clone(&started), Arc::clone(&done));
        tokio::spawn(async move {
            let mut entries = Vec::new();
            for i in 0..N {
                started.store(u32::try_from(i).unwrap() + 1, Ordering::SeqCst);
                let data = payload(i, 3 << 20);
                entries.push(store.put_segment(seg_meta(i), data.into()).await.unwrap());
            }
            done.store(true, Ordering::SeqCst);
            entries
        })
    };

    // A reader lists the catalog throughout: whatever it lists must be
    // complete and intact, even while the server is down or restarting.
    let checker = {
        let done = Arc::clone(&done);
        let quick = RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            max_attempts: 2,
        };
        let store = Store::open_with(&cfg, quick).await.unwrap();
        tokio::spawn(async move {
            let mut checks = 0u32;
            while !done.load(Ordering::SeqCst) {
                if let Ok(listed) = store.list_segments().await {
                    for e in listed {
                        match store.get_segment(&e).await {
                            Ok(bytes) => assert_eq!(u64::try_from(bytes.len()).unwrap(), e.size),
                            // The server went away between list and get: fine.
                            Err(StoreError::Unavailable { .. }) => {}
                            Err(StoreError::Mismatch { key, reason }) => {
                                panic!("half-written object visible: {key}: {reason}")
                            }
                            Err(StoreError::NotFound { key }) => {
                                panic!("catalog entry without its data: {key}")
                            }
                            Err(e) => panic!("unexpected: {e}"),
                        }
                        checks += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            checks
        })
    };

    // Kill the server while upload 4 is in flight, twice.
    for kill_at in [4u32, 10] {
        while started.load(Ordering::SeqCst) < kill_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        g = tokio::task::spawn_blocking(move || {
            g.stop();
            std::thread::sleep(Duration::from_secs(2));
            g.restart().unwrap();
            g
        })
        .await
        .unwrap();
    }

    let entries = tokio::time::timeout(Duration::from_secs(300), uploader)
        .await
        .unwrap()
        .unwrap();
    let checks = checker.await.unwrap();
    assert!(checks > 0, "the reader checked listed objects");
    assert!(
        store.retried() > 0,
        "the uploads met the outages and retried"
    );
    eprintln!(
        "{} retries, {checks} listed objects checked during the uploads",
        store.retried()
    );
    let listed = store.list_segments().await.unwrap();
    assert_eq!(listed, entries, "every upload is listed exactly once");
    for (i, e) in listed.iter().enumerate() {
        let bytes = store.get_segment(e).await.unwrap();
        assert_eq!(&bytes[..], &payload(u64::try_from(i).unwrap(), 3 << 20)[..]);
    }
}

/// Files at least `MULTIPART_THRESHOLD` bytes go up as multipart uploads,
/// still data first and catalog entry second: with the server killed in
/// the middle of one, no half-uploaded object is ever listed, and every
/// file ends up stored exactly once and intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_upload_in_parts_and_a_kill_mid_upload_shows_nothing_half_written() {
    use rewind_history::store::s3::{MULTIPART_PART_SIZE, MULTIPART_THRESHOLD};
    let mut g = start_garage().await;
    let cfg = config(&g, "mp");
    let retry = RetryPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(2),
        max_attempts: 40,
    };
    let store = Store::open_with(&cfg, retry).await.unwrap();
    // Below the threshold: one PUT.
    store
        .put_segment(seg_meta(0), payload(0, 1 << 20).into())
        .await
        .unwrap();
    assert_eq!(store.multipart_uploads(), 0);

    const N: u64 = 4;
    let size = MULTIPART_THRESHOLD + 2 * MULTIPART_PART_SIZE + 4321;
    let started = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Made up front, so the kill below lands in an upload, not in making data.
    let files: Vec<bytes::Bytes> = (1..=N).map(|i| payload(100 + i, size).into()).collect();
    let uploader = {
        let (store, started, done) = (store.clone(), Arc::clone(&started), Arc::clone(&done));
        tokio::spawn(async move {
            let mut entries = Vec::new();
            for (i, file) in (1..=N).zip(files) {
                started.store(u32::try_from(i).unwrap(), Ordering::SeqCst);
                let meta = SnapshotMeta {
                    seq: i * 1000,
                    time_ms: 10_000 + i64::try_from(i).unwrap(),
                    objects: 100_000,
                    label: None,
                    encrypted: false,
                    resource_set: None,
                };
                entries.push(store.put_snapshot(meta, file).await.unwrap());
            }
            done.store(true, Ordering::SeqCst);
            entries
        })
    };
    let checker = {
        let done = Arc::clone(&done);
        let quick = RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            max_attempts: 2,
        };
        let store = Store::open_with(&cfg, quick).await.unwrap();
        tokio::spawn(async move {
            let mut checks = 0u32;
            while !done.load(Ordering::SeqCst) {
                if let Ok(listed) = store.list_snapshots().await {
                    for e in listed {
                        match store.get_snapshot(&e).await {
                            Ok(bytes) => assert_eq!(u64::try_from(bytes.len()).unwrap(), e.size),
                            Err(StoreError::Unavailable { .. }) => {}
                            Err(StoreError::Mismatch { key, reason }) => {
                                panic!("half-written object visible: {key}: {reason}")
                            }
                            Err(StoreError::NotFound { key }) => {
                                panic!("catalog entry without its data: {key}")
                            }
                            Err(e) => panic!("unexpected: {e}"),
                        }
                        checks += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            checks
        })
    };
    // Kill the server while the second large upload is in flight.
    while started.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    g = tokio::task::spawn_blocking(move || {
        g.stop();
        g
    })
    .await
    .unwrap();
    // The server stays down until an upload has met the outage: on a loaded
    // machine the second file can finish before the kill lands, and then the
    // third one starts against the stopped server.
    let down = std::time::Instant::now();
    while store.retried() == 0 && down.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    g = tokio::task::spawn_blocking(move || {
        g.restart().unwrap();
        g
    })
    .await
    .unwrap();
    let entries = tokio::time::timeout(Duration::from_secs(300), uploader)
        .await
        .unwrap()
        .unwrap();
    let checks = checker.await.unwrap();
    eprintln!(
        "{} multipart uploads, {} retries, {checks} listed snapshots checked",
        store.multipart_uploads(),
        store.retried()
    );
    assert!(
        store.multipart_uploads() >= N,
        "every large file went up in parts"
    );
    assert!(store.retried() > 0, "an upload met the outage and retried");
    let listed = store.list_snapshots().await.unwrap();
    assert_eq!(listed, entries, "every upload is listed exactly once");
    for (i, e) in listed.iter().enumerate() {
        let bytes = store.get_snapshot(e).await.unwrap();
        assert_eq!(bytes.len(), size);
        assert_eq!(
            &bytes[..],
            &payload(100 + u64::try_from(i).unwrap() + 1, size)[..]
        );
    }
    drop(g);
}

/// Multipart uploads in progress in the bucket, as Garage lists them
/// (ListMultipartUploads, signed by curl).
fn multipart_uploads_in_progress(g: &Garage) -> usize {
    let (id, secret) = g.key();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--aws-sigv4", "aws:amz:garage:s3", "--user"])
        .arg(format!("{id}:{secret}"))
        // Garage wants the payload's hash signed (here: of no payload).
        .args([
            "-H",
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "-w",
            "\\n%{http_code}",
        ])
        .arg(format!("{}/{}?uploads=", g.endpoint(), g.bucket()))
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    assert!(
        out.status.success() && code == "200",
        "ListMultipartUploads failed ({code}): {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    body.matches("<Upload>").count()
}

/// Waits until Garage lists `want` multipart uploads in progress.
async fn wait_uploads(g: &Garage, want: usize, within: Duration, what: &str) {
    let t = std::time::Instant::now();
    loop {
        let n = multipart_uploads_in_progress(g);
        if n == want {
            return;
        }
        assert!(
            t.elapsed() < within,
            "{what}: Garage lists {n} multipart uploads in progress, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A multipart upload that fails part way (the link to the server cut
/// until the client gives up) or whose future is dropped part way (a
/// timeout, shutdown) is aborted: the server keeps no parts of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_multipart_upload_is_aborted_and_leaves_no_parts() {
    use rewind_history::store::s3::{MULTIPART_PART_SIZE, MULTIPART_THRESHOLD};
    let g = start_garage().await;
    let upstream: std::net::SocketAddr =
        g.endpoint().trim_start_matches("http://").parse().unwrap();
    let proxy = rewind_tests::TcpProxy::start(upstream).await.unwrap();
    let mut cfg = config(&g, "abort");
    if let StoreConfig::S3(s3) = &mut cfg {
        s3.endpoint = Some(format!("http://{}", proxy.addr()));
    }
    // One attempt: a retry would start a new upload and hide the first.
    let once = RetryPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(10),
        max_attempts: 1,
    };
    let store = Store::open_with(&cfg, once).await.unwrap();
    // Many parts, so the upload is still sending when the test cuts in.
    let size = MULTIPART_THRESHOLD + 10 * MULTIPART_PART_SIZE;
    let data: bytes::Bytes = payload(7, size).into();
    assert_eq!(multipart_uploads_in_progress(&g), 0);

    // 1. The link fails mid-upload until the client gives up.
    let put = {
        let (store, data) = (store.clone(), data.clone());
        tokio::spawn(async move { store.put_object("abort/failed", data).await })
    };
    wait_uploads(&g, 1, Duration::from_secs(30), "upload started").await;
    proxy.stall();
    let t = std::time::Instant::now();
    while !put.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the upload never failed"
        );
        proxy.cut_all();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = put.await.unwrap().unwrap_err();
    eprintln!("the upload failed as it should: {err}");
    // The abort retries: it goes through once the link is back.
    proxy.resume();
    wait_uploads(&g, 0, Duration::from_secs(30), "after a failed upload").await;

    // 2. The upload's future is dropped mid-upload.
    let put = {
        let (store, data) = (store.clone(), data.clone());
        tokio::spawn(async move { store.put_object("abort/dropped", data).await })
    };
    wait_uploads(&g, 1, Duration::from_secs(30), "second upload started").await;
    proxy.stall();
    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.resume();
    wait_uploads(&g, 0, Duration::from_secs(30), "after a dropped upload").await;

    // Neither left an object, and an upload still works.
    assert!(store.list("abort/").await.unwrap().is_empty());
    store.put_object("abort/whole", data.clone()).await.unwrap();
    assert_eq!(multipart_uploads_in_progress(&g), 0);
    assert_eq!(store.get_object("abort/whole").await.unwrap(), data);
}
