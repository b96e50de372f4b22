import Foundation
public import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writing keys and certificates to disk with the right permissions from the first byte.
public enum IdentityFiles {
    /// Writes a private key with mode 0600. The file is created with that mode (never briefly
    /// world-readable); an existing file is refused unless `overwrite` is true, in which case it is
    /// replaced atomically.
    public static func writeKey(pem: String, to path: String, overwrite: Bool = false) throws(IdentityError) {
        try writeSecret(Array(pem.utf8), to: path, overwrite: overwrite, what: "key")
    }

    /// Writes secret bytes (a key, a token) the way ``writeKey(pem:to:overwrite:)`` writes a key:
    /// mode 0600 from creation, refused or atomically replaced when the file exists.
    public static func writeSecret(
        _ bytes: [UInt8], to path: String, overwrite: Bool = false, what: String = "secret"
    ) throws(IdentityError) {
        try store(bytes, to: path, mode: 0o600, overwrite: overwrite, what: what)
    }

    /// Writes a certificate (or bundle) with mode 0644.
    public static func writeCertificate(pem: String, to path: String, overwrite: Bool = false) throws(IdentityError) {
        try store(Array(pem.utf8), to: path, mode: 0o644, overwrite: overwrite, what: "certificate")
    }

    /// Writes `certificates` as a PEM bundle with mode 0644.
    public static func writeCertificates(_ certificates: [Certificate], to path: String, overwrite: Bool = false)
        throws(IdentityError)
    {
        try writeCertificate(pem: PEMFile.pem(certificates), to: path, overwrite: overwrite)
    }

    /// Reads a text file, with an error naming `path` and the reason.
    public static func read(_ path: String) throws(IdentityError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                throw IdentityError(code: .fileSystem, message: "cannot read \(path): no such file")
            }
            throw IdentityError(code: .fileSystem, message: "cannot read \(path)", cause: error)
        }
    }

    private static func store(_ bytes: [UInt8], to path: String, mode: mode_t, overwrite: Bool, what: String)
        throws(IdentityError)
    {
        guard !path.isEmpty else { throw .invalidArgument("no path given for the \(what) file") }
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if !directory.isEmpty,
            !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) || !isDirectory.boolValue
        {
            throw IdentityError(
                code: .fileSystem,
                message: "cannot write the \(what) to \(path): directory \(directory) does not exist"
            )
        }
        // With overwrite, write a sibling temporary file and rename it over the target, so the
        // target is never truncated, half-written, or left with the old mode.
        let target = overwrite ? path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" : path
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw IdentityError(
                    code: .fileSystem,
                    message: "\(path) already exists; refusing to overwrite the \(what) (use --force to replace it)"
                )
            }
            throw IdentityError(code: .fileSystem, message: "cannot create \(target): \(errnoText(code))")
        }
        var failure: IdentityError?
        // umask may have removed bits from `mode`; set exactly what was asked for.
        if fchmod(fd, mode) != 0 {
            failure = IdentityError(
                code: .fileSystem,
                message: "cannot set mode \(String(mode, radix: 8)) on \(target): \(errnoText(errno))"
            )
        }
        var offset = 0
        while failure == nil && offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                write(fd, raw.baseAddress, raw.count)
            }
            if written < 0 {
                if errno == EINTR { continue }
                failure = IdentityError(
                    code: .fileSystem,
                    message: "cannot write the \(what) to \(path): \(errnoText(errno))"
                )
            } else {
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 {
            failure = IdentityError(
                code: .fileSystem,
                message: "cannot write the \(what) to \(path): \(errnoText(errno))"
            )
        }
        if close(fd) != 0 && failure == nil {
            failure = IdentityError(
                code: .fileSystem,
                message: "cannot write the \(what) to \(path): \(errnoText(errno))"
            )
        }
        if failure == nil && overwrite && rename(target, path) != 0 {
            failure = IdentityError(code: .fileSystem, message: "cannot replace \(path): \(errnoText(errno))")
        }
        if let failure {
            unlink(target)
            throw failure
        }
    }

    private static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code)) + " (errno \(code))"
    }
}
