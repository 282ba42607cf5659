//! URL path parsing: `/api/v1/...` and `/apis/{group}/{version}/...`.

/// A request path against a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    Health,
    CoreGroup,
    CoreVersion(String),
    Groups,
    Group(String),
    GroupVersion(String, String),
    Resource(ResourcePath),
    OpenApiV2,
    OpenApiV3Index,
    /// `/openapi/v3/api/v1` (group "") or `/openapi/v3/apis/{group}/{version}`.
    OpenApiV3(String, String),
    Unknown,
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let mk = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            plural: plural.to_string(),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        [] => {
            if group.is_empty() {
                Route::CoreVersion(version.to_string())
            } else {
                Route::GroupVersion(group.to_string(), version.to_string())
            }
        }
        // The namespace object itself and its subresources.
        ["namespaces", name] if group.is_empty() => mk(None, "namespaces", Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            mk(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, plural] => mk(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => mk(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => mk(Some(ns), plural, Some(name), Some(sub)),
        [plural] => mk(None, plural, None, None),
        [plural, name] => mk(None, plural, Some(name), None),
        [plural, name, sub] => mk(None, plural, Some(name), Some(sub)),
        _ => Route::Unknown,
    }
}

pub(crate) fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez"] => Route::Health,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", version] => Route::OpenApiV3(String::new(), version.to_string()),
        ["openapi", "v3", "apis", group, version] => Route::OpenApiV3(group.to_string(), version.to_string()),
        ["api"] => Route::CoreGroup,
        ["api", version, rest @ ..] => resource("", version, rest),
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["apis", group, version, rest @ ..] => resource(group, version, rest),
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn core_and_group_paths() {
        let r = res("/api/v1/namespaces/default/configmaps/cm");
        assert_eq!(
            (r.group.as_str(), r.namespace.as_deref(), r.plural.as_str(), r.name.as_deref()),
            ("", Some("default"), "configmaps", Some("cm"))
        );
        let r = res("/api/v1/namespaces/default");
        assert_eq!((r.plural.as_str(), r.name.as_deref(), r.namespace), ("namespaces", Some("default"), None));
        let r = res("/api/v1/namespaces/x/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/apis/clodo.dev/v1alpha1/namespaces/a/customers/c/status");
        assert_eq!((r.group.as_str(), r.subresource.as_deref()), ("clodo.dev", Some("status")));
        let r = res("/apis/clodo.dev/v1alpha1/customers");
        assert_eq!((r.namespace, r.name), (None, None));
        assert_eq!(parse("/apis/clodo.dev/v1alpha1"), Route::GroupVersion("clodo.dev".into(), "v1alpha1".into()));
        assert_eq!(parse("/api/v1"), Route::CoreVersion("v1".into()));
        assert_eq!(parse("/nope"), Route::Unknown);
    }
}
