//! An interrupted restore continues with `--resume`: the restore task is
//! cancelled mid-way (after the journal has synced at least one chunk and
//! before the end), then the same plan is resumed. The journal's completed
//! objects are skipped and the final state equals the recording.

mod restore_support;

use std::time::Duration;

use restore_support::*;
use rewind_history::TypedKey;
use rewind_restore::apply::ApplyError;
use rewind_restore::resume::{JournalError, journal_path, read};
use rewind_restore::{ApplyOptions, PlanOptions, ProtectedSet, apply, plan};
use rewind_tests::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_restore_resumes_to_a_complete_result() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(60)).await;
    let recorded = record(&src.admin_client()).await;
    drop(src);

    let client = dst.admin_client();
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let first = plan(&recorded, &client, &opts).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let apply_opts = ApplyOptions {
        concurrency: 2,
        state_dir: Some(state_dir.path().to_owned()),
        ..ApplyOptions::default()
    };
    let journal = journal_path(state_dir.path(), &first.id);
    let task = {
        let (client, p, o) = (client.clone(), first.clone(), apply_opts.clone());
        tokio::spawn(async move { apply(&client, &p, &o).await })
    };
    // Cancel once more than one synced chunk (64 entries) is on disk.
    loop {
        let lines = std::fs::read_to_string(&journal)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines > 130 {
            break;
        }
        assert!(
            !task.is_finished(),
            "restore finished before it could be interrupted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    let (_, progress) = read(&journal).unwrap();
    assert!(!progress.finished, "interrupted before the end");
    let done_before = progress.done.len();
    assert!(
        done_before > 64 && done_before < recorded.len() - 1,
        "{done_before}"
    );
    assert!(
        !differences(&recorded, &client).await.is_empty(),
        "the cluster is incomplete"
    );

    // A fresh restore of the same plan refuses to start over the journal.
    let again = apply(&client, &first, &apply_opts).await;
    assert!(
        matches!(
            again,
            Err(ApplyError::Journal(JournalError::Unfinished { .. }))
        ),
        "{again:?}"
    );

    // Re-planning the same state (what `rewind restore --resume` does) gives
    // the same plan id; journaled objects now show as unchanged.
    let replanned = plan(&recorded, &client, &opts).await.unwrap();
    assert_eq!(replanned.id, first.id);
    // Journaled objects are in place; at most `concurrency` more were in
    // flight when the task was cancelled (written, not yet journaled).
    let unchanged = replanned.count(rewind_restore::Action::Unchanged);
    assert!(
        (done_before..=done_before + 2).contains(&unchanged),
        "{unchanged} unchanged, {done_before} journaled"
    );
    // Resume the interrupted plan: journaled objects are skipped, not rewritten.
    let report = apply(
        &client,
        &first,
        &ApplyOptions {
            resume: true,
            concurrency: 16,
            ..apply_opts
        },
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.resumed, done_before);
    assert_eq!(
        report.written + report.resumed,
        first.count(rewind_restore::Action::Create)
    );
    assert!(read(&journal).unwrap().1.finished);
    assert!(!plan(&recorded, &client, &opts).await.unwrap().has_work());

    let mut want = recorded.clone();
    want.remove(&TypedKey {
        rtype: deploy_t(),
        namespace: Some("cattle-system".into()),
        name: "rancher".into(),
    });
    let diffs = differences(&want, &client).await;
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
