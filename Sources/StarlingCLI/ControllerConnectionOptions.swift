import ArgumentParser
import Foundation
import StarlingCore
import StarlingProxy

/// How a process of the data plane (`starling proxy`, `starling gateway`) reaches the controller:
/// every replica's API address, the API's certificate, and a join token.
struct ControllerConnectionOptions: ParsableArguments {
    @Option(help: "The controller's API address HOST:PORT, or every replica's: HOST:PORT,HOST:PORT,…")
    var controller: String

    @Option(help: "PEM file of the controller's API certificate (the context's certificate-authority-data).")
    var controllerCAFile: String

    @Option(help: "File holding the join token (from `starling token create`).")
    var tokenFile: String

    /// Every replica named by --controller.
    func replicas() throws(ValidationError) -> [HostPort] {
        try controller.split(separator: ",").map { part throws(ValidationError) in
            try HostPort.parse(part.trimmingCharacters(in: .whitespaces), flag: "--controller")
        }
    }

    func validate() throws {
        guard !(try replicas()).isEmpty else { throw ValidationError("--controller is empty") }
    }

    /// The controller's API with the certificate and token read from their files.
    func api() throws -> ControllerAPI {
        let replicas = try replicas()
        return ControllerAPI(
            host: replicas[0].host, port: replicas[0].port, certificatePEM: try InputFile.read(controllerCAFile),
            token: try InputFile.read(tokenFile).trimmingCharacters(in: .whitespacesAndNewlines), replicas: replicas)
    }
}
