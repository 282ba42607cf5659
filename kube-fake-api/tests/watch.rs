//! Watches: resume from a resourceVersion, 410 Gone, bookmarks, streaming lists,
//! selector transitions, timeouts, and kube-runtime's watcher + reflector.

mod common;

use std::time::Duration;

use common::{WAIT, Widget, install_widget_crd, widget};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube_fake_api::FakeApiServer;
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    ConfigMap { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
}

/// Type, object name (or bookmark resourceVersion) of the next `n` events.
async fn take_events<S>(stream: S, n: usize) -> Vec<(String, String)>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>>,
{
    let events = tokio::time::timeout(WAIT, stream.take(n).collect::<Vec<_>>()).await.expect("events arrive in time");
    events
        .into_iter()
        .map(|e| match e.expect("watch event") {
            WatchEvent::Added(o) => ("ADDED".into(), o.name_any()),
            WatchEvent::Modified(o) => ("MODIFIED".into(), o.name_any()),
            WatchEvent::Deleted(o) => ("DELETED".into(), o.name_any()),
            WatchEvent::Bookmark(b) => ("BOOKMARK".into(), b.metadata.resource_version),
            WatchEvent::Error(s) => ("ERROR".into(), s.code.to_string()),
        })
        .collect()
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_reports_410_after_compaction() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "w");
    cms.create(&PostParams::default(), &cm("a")).await?;
    let rv = cms.list(&ListParams::default()).await?.metadata.resource_version.expect("list rv");

    cms.create(&PostParams::default(), &cm("b")).await?;
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"x": "1"}}))).await?;
    cms.delete("b", &DeleteParams::default()).await?;

    let stream = cms.watch(&WatchParams::default(), &rv).await?;
    let got = take_events(stream, 3).await;
    assert_eq!(
        got,
        [("ADDED".to_string(), "b".to_string()), ("MODIFIED".into(), "a".into()), ("DELETED".into(), "b".into())]
    );

    // Live events after the replay, in order.
    let stream = cms.watch(&WatchParams::default(), &api.resource_version().to_string()).await?;
    cms.create(&PostParams::default(), &cm("c")).await?;
    assert_eq!(take_events(stream, 1).await, [("ADDED".to_string(), "c".to_string())]);

    // After a compaction the old resourceVersion is gone.
    api.compact();
    let stream = cms.watch(&WatchParams::default(), &rv).await?;
    assert_eq!(take_events(stream, 1).await, [("ERROR".to_string(), "410".to_string())]);

    // A bounded history expires old versions by itself.
    let small = FakeApiServer::builder().watch_history(2).start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(small.client(), "w");
    let start = small.resource_version().to_string();
    for i in 0..4 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}"))).await?;
    }
    let stream = cms.watch(&WatchParams::default(), &start).await?;
    assert_eq!(take_events(stream, 1).await, [("ERROR".to_string(), "410".to_string())]);
    Ok(())
}

#[tokio::test]
async fn bookmarks_streaming_lists_and_timeouts() -> anyhow::Result<()> {
    let api = FakeApiServer::builder().bookmark_interval(Duration::from_millis(50)).start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "w");
    cms.create(&PostParams::default(), &cm("a")).await?;
    cms.create(&PostParams::default(), &cm("b")).await?;
    let current = api.resource_version().to_string();

    // Periodic bookmarks carry the current resourceVersion.
    let stream = cms.watch(&WatchParams::default(), &current).await?;
    assert_eq!(take_events(stream, 1).await, [("BOOKMARK".to_string(), current.clone())]);
    let stream = cms.watch(&WatchParams::default().disable_bookmarks().timeout(1), &current).await?;
    let all = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>()).await?;
    assert!(all.is_empty(), "no bookmarks unless asked for, and timeoutSeconds ends the watch");

    // Streaming list: initial ADDED events, then the initial-events-end bookmark.
    let stream = cms.watch(&WatchParams::streaming_lists(), "").await?;
    let events = tokio::time::timeout(WAIT, stream.take(3).try_collect::<Vec<_>>()).await??;
    let names: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) => Some(o.name_any()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["a", "b"]);
    match &events[2] {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"));
            assert_eq!(b.metadata.resource_version, current);
        }
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }

    // resourceVersion "0" (or none) starts with the current state as ADDED.
    let stream = cms.watch(&WatchParams::default().disable_bookmarks(), "0").await?;
    assert_eq!(take_events(stream, 2).await, [("ADDED".to_string(), "a".to_string()), ("ADDED".into(), "b".into())]);
    Ok(())
}

#[tokio::test]
async fn selector_watches_see_objects_enter_and_leave() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "w");
    let other: Api<ConfigMap> = Api::namespaced(api.client(), "elsewhere");
    let rv = api.resource_version().to_string();
    let stream = cms.watch(&WatchParams::default().labels("app=web").disable_bookmarks(), &rv).await?;
    cms.create(&PostParams::default(), &cm("x")).await?;
    let mut labelled = cm("y");
    labelled.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    other.create(&PostParams::default(), &labelled).await?;
    cms.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}}))).await?;
    cms.patch("x", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v"}}))).await?;
    cms.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "api"}}}))).await?;
    assert_eq!(
        take_events(stream, 3).await,
        [("ADDED".to_string(), "x".to_string()), ("MODIFIED".into(), "x".into()), ("DELETED".into(), "x".into())]
    );
    let by_name = cms
        .watch(
            &WatchParams::default().fields("metadata.name=z").disable_bookmarks(),
            &api.resource_version().to_string(),
        )
        .await?;
    cms.create(&PostParams::default(), &cm("q")).await?;
    cms.create(&PostParams::default(), &cm("z")).await?;
    assert_eq!(take_events(by_name, 1).await, [("ADDED".to_string(), "z".to_string())]);
    Ok(())
}

#[tokio::test]
async fn watcher_and_reflector_follow_changes() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    install_widget_crd(&api.client()).await?;
    let widgets: Api<Widget> = Api::namespaced(api.client(), "r");
    widgets.create(&PostParams::default(), &widget("pre", 1)).await?;

    let (reader, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(widgets.clone(), watcher::Config::default().page_size(1))).applied_objects().boxed();
    let drive = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    });
    tokio::time::timeout(WAIT, reader.wait_until_ready()).await??;
    assert_eq!(reader.state().len(), 1);

    widgets.create(&PostParams::default(), &widget("live", 2)).await?;
    widgets.patch("pre", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 7}}))).await?;
    widgets.delete("live", &DeleteParams::default()).await?;
    common::eventually("reflector sees the update and the delete", || async {
        let state = reader.state();
        let pre = state.iter().find(|w| w.name_any() == "pre")?;
        (state.len() == 1 && pre.spec.replicas == 7).then_some(())
    })
    .await;
    drive.abort();

    // The streaming-list strategy works too.
    let mut stream = watcher(widgets.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.try_next().await? {
            match ev {
                watcher::Event::InitApply(w) => seen.push(w.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        Ok::<_, watcher::Error>(())
    })
    .await??;
    assert_eq!(seen, ["pre"]);
    let requests = api.request_log();
    assert!(
        requests.iter().any(|r| r.verb == "watch" && r.query_param("sendInitialEvents").as_deref() == Some("true")),
        "streaming list used a watch with sendInitialEvents"
    );
    Ok(())
}

#[tokio::test]
async fn metadata_watcher_gets_partial_objects() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "m");
    cms.create(&PostParams::default(), &cm("before")).await?;
    let meta: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(api.client(), "m");
    let mut stream = watcher(meta, watcher::Config::default()).applied_objects().boxed();
    let first = tokio::time::timeout(WAIT, stream.try_next()).await??.expect("an object");
    assert_eq!(first.name_any(), "before");
    assert_eq!(first.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    cms.create(&PostParams::default(), &cm("after")).await?;
    let second = tokio::time::timeout(WAIT, stream.try_next()).await??.expect("an object");
    assert_eq!(second.name_any(), "after");
    Ok(())
}

#[tokio::test]
async fn watcher_relists_after_410() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "g");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(api.client(), "g");
    let (reader, writer) = reflector::store();
    // Short watches without bookmarks: the watcher resumes from its last seen version.
    let config = watcher::Config::default().disable_bookmarks().timeout(1);
    let stream = reflector(writer, watcher(cms.clone(), config));
    let drive = tokio::spawn(stream.for_each(|_| async {}));
    tokio::time::timeout(WAIT, reader.wait_until_ready()).await??;

    // Other writes move the global version on; compaction makes the watcher's version too old.
    secrets
        .create(
            &PostParams::default(),
            &k8s_openapi::api::core::v1::Secret {
                metadata: ObjectMeta { name: Some("s".into()), ..Default::default() },
                ..Default::default()
            },
        )
        .await?;
    api.compact();
    let lists = || api.request_log().iter().filter(|r| r.plural() == Some("configmaps") && r.verb == "list").count();
    common::eventually("a re-list after 410 Gone", || async { (lists() >= 2).then_some(()) }).await;
    cms.create(&PostParams::default(), &cm("after")).await?;
    common::eventually("the store keeps following", || async {
        reader.state().iter().any(|c| c.name_any() == "after").then_some(())
    })
    .await;
    drive.abort();
    Ok(())
}
