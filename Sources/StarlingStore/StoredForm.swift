public import Crypto
import Foundation
public import StarlingCore

/// Seals Secrets for storage: AES-256-GCM under the replicas' secrets key, bound to the Secret's
/// kind, namespace and name (a sealed value moved to another row does not open).
public struct SecretSealer: Sendable {
    /// The key's bytes (swift-crypto's `SymmetricKey` is not `Sendable`); never logged or written.
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// - Throws: `StoreError.invalid` unless `key` is 256 bits.
    public init(key: SymmetricKey) throws(StoreError) {
        guard key.bitCount == 256 else {
            throw StoreError(.invalid, "the secrets key has \(key.bitCount) bits; it must have 256 (32 bytes)")
        }
        self.keyBytes = key.withUnsafeBytes { Array($0) }
    }

    static let prefix = "sealed:v1:"
    private static let checkText = "starling secrets key check"

    func seal(_ text: String, boundTo context: String) throws -> String {
        let box = try AES.GCM.seal(Data(text.utf8), using: key, authenticating: Data(context.utf8))
        guard let combined = box.combined else { throw StoreError(.unavailable, "AES-GCM gave no sealed form") }
        return Self.prefix + combined.base64EncodedString()
    }

    /// The text sealed in `sealed`; nil when it does not open with this key (or was moved).
    func open(_ sealed: String, boundTo context: String) -> String? {
        guard sealed.hasPrefix(Self.prefix), let data = Data(base64Encoded: String(sealed.dropFirst(Self.prefix.count))),
            let box = try? AES.GCM.SealedBox(combined: data),
            let plain = try? AES.GCM.open(box, using: key, authenticating: Data(context.utf8))
        else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }

    /// A value stored beside the data that shows which key sealed it.
    func makeCheck() throws -> String { try seal(Self.checkText, boundTo: "check") }

    /// True when `check` was made with this key.
    func verifies(_ check: String) -> Bool { open(check, boundTo: "check") == Self.checkText }
}

/// How a store keeps resources: compact JSON text, a Secret's sealed when the store has a sealer.
/// The one place both stores encode and decode a stored resource.
struct StoredForm: Sendable {
    /// The store, for messages ("SQLite store PATH", "PostgreSQL store URL").
    var store: String
    var sealer: SecretSealer?

    static func sealed(_ kind: String) -> Bool { kind == "Secret" }

    /// The stored text of `resource`.
    func text(of resource: Resource) throws(StoreError) -> String {
        let json = ResourceEncoder.compactJSON(resource)
        guard let sealer, Self.sealed(resource.kind) else { return json }
        return try seal(json, with: sealer, key: resource.key)
    }

    private func seal(_ json: String, with sealer: SecretSealer, key: ResourceKey) throws(StoreError) -> String {
        do {
            return try sealer.seal(json, boundTo: "\(key)")
        } catch {
            throw StoreError(.unavailable, "\(store): sealing \(key) failed", cause: error)
        }
    }

    /// The resource stored as `text` under `key`. Plain JSON is read as it is (a Secret written
    /// before the store had a key is sealed on its next write).
    func resource(from text: String, key: ResourceKey) throws(StoreError) -> Resource {
        var json = text
        if text.hasPrefix(SecretSealer.prefix) {
            guard let sealer else {
                throw StoreError(
                    .misconfigured, "\(store): \(key) is sealed and this controller has no secrets key (--secrets-key-file)")
            }
            guard let opened = sealer.open(text, boundTo: "\(key)") else {
                throw StoreError(
                    .misconfigured,
                    "\(store): \(key) does not open with this secrets key; every replica needs the same --secrets-key-file")
            }
            json = opened
        }
        do {
            return try ResourceDecoder.decodeStored(json)
        } catch {
            throw StoreError(
                .unavailable,
                "\(store): the stored \(key) cannot be read (the store is damaged or was written by a newer Starling)",
                cause: error)
        }
    }

    /// The sealed form of `text`, a plain Secret stored under `key` before the store had a key
    /// (or by a Starling that did not seal); nil when there is nothing to seal (no key, another
    /// kind, already sealed). Stores re-seal such rows, and their history, when they open.
    func resealed(_ text: String, key: ResourceKey) throws(StoreError) -> String? {
        guard let sealer, Self.sealed(key.kind), !text.hasPrefix(SecretSealer.prefix) else { return nil }
        return try seal(text, with: sealer, key: key)
    }

    /// Checks the key against the store's recorded check value. Returns the check to record when
    /// the store has none yet.
    /// - Throws: `StoreError.misconfigured` when the key is not the one the store's secrets were
    ///   sealed with, or when the store has sealed secrets and no key was given.
    func verify(recordedCheck: String?) throws(StoreError) -> String? {
        switch (sealer, recordedCheck) {
        case (nil, nil):
            return nil
        case (nil, .some):
            throw StoreError(
                .misconfigured, "\(store) holds sealed secrets and no secrets key was given (--secrets-key-file)")
        case (let sealer?, nil):
            do {
                return try sealer.makeCheck()
            } catch {
                throw StoreError(.unavailable, "\(store): sealing the key check failed", cause: error)
            }
        case (let sealer?, let check?):
            guard sealer.verifies(check) else {
                throw StoreError(
                    .misconfigured,
                    "\(store): its secrets were sealed with another secrets key; every replica needs the same "
                        + "--secrets-key-file (copy it from the replica that created the store)")
            }
            return nil
        }
    }
}
