import Foundation

/// The fields of podinfo's `/` answer the frontend shows. Foundation is used here to parse JSON
/// only; no networking.
struct PodinfoAnswer: Decodable, Sendable, Equatable {
    var hostname: String
    var message: String?
    var cluster: String?
    var client: String?

    /// Parses podinfo's JSON; nil when the body is not such an answer.
    static func parse(_ body: String) -> PodinfoAnswer? {
        try? JSONDecoder().decode(PodinfoAnswer.self, from: Data(body.utf8))
    }
}
