import Crypto
import Foundation
import StarlingCore
import StarlingIdentity
import StarlingStore

/// The key that seals Secrets at rest (the issuer's key, link credentials): 32 random bytes,
/// base64, in a file of mode 0600. Every replica of a cluster needs the same file.
enum SecretsKeyFile {
    /// Reads the key at `path`, or creates one there when the file does not exist.
    /// - Throws: `ControllerError` when the file is not a key or others may read it.
    static func loadOrCreate(path: String) throws -> SecretSealer {
        if !FileManager.default.fileExists(atPath: path) {
            let key = SymmetricKey(size: .bits256)
            let text = key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
            do {
                try IdentityFiles.writeSecret(Array(text.utf8), to: path, what: "secrets key")
            } catch {
                throw ControllerError("cannot create the secrets key \(path): \(error)")
            }
            return try SecretSealer(key: key)
        }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let mode = (attributes?[.posixPermissions] as? NSNumber)?.uint16Value, mode & 0o077 != 0 {
            throw ControllerError(
                "the secrets key \(path) has mode \(String(mode & 0o777, radix: 8)); others may read it. Run chmod 600 \(path)")
        }
        let text: String
        do {
            text = try IdentityFiles.read(path)
        } catch {
            throw ControllerError("cannot read the secrets key: \(error)")
        }
        guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw ControllerError(
                "the secrets key \(path) is not 32 bytes in base64 (make one with: head -c 32 /dev/urandom | base64)")
        }
        return try SecretSealer(key: SymmetricKey(data: bytes))
    }
}
