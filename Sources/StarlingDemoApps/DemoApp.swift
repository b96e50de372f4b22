/// The demo applications of `starling demo-app`: `podinfo` answers `/` with JSON naming its
/// message, cluster and instance; `frontend` serves a live page that calls podinfo through the
/// mesh every second and shows which instance and cluster answered.
public enum DemoApp: String, Sendable, CaseIterable {
    case podinfo
    case frontend
}
