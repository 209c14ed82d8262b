import FoundationEssentials

/// A flat JSON object read as parameters, so that a route can take the same parameters as
/// query arguments or as a JSON body and check both one way: numbers become their decimal
/// text, booleans "true"/"false", strings stay as they are; nulls are left out.
public enum JSONParameters {
    /// The members of the JSON object in `body`. Anything but an object of numbers, strings,
    /// booleans and nulls is a 400 `invalid-json`.
    public static func decode(_ body: [UInt8]) throws(RoutingProblem) -> QueryParameters {
        do {
            let object = try JSONDecoder().decode(FlatObject.self, from: Data(body))
            return QueryParameters(object.pairs.sorted { $0.name < $1.name })
        } catch let error as RoutingProblem {
            throw error
        } catch DecodingError.typeMismatch(_, let context), DecodingError.dataCorrupted(let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw .invalidJSON(path.isEmpty ? context.debugDescription : "'\(path)': \(context.debugDescription)")
        } catch {
            throw .invalidJSON("\(error)")
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct FlatObject: Decodable {
        var pairs: [(name: String, value: String)] = []

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            for key in container.allKeys {
                if try container.decodeNil(forKey: key) { continue }
                if let value = try? container.decode(Int.self, forKey: key) {
                    pairs.append((key.stringValue, String(value)))
                } else if let value = try? container.decode(Bool.self, forKey: key) {
                    pairs.append((key.stringValue, String(value)))
                } else if let value = try? container.decode(String.self, forKey: key) {
                    pairs.append((key.stringValue, value))
                } else {
                    throw DecodingError.typeMismatch(
                        String.self,
                        .init(
                            codingPath: [key],
                            debugDescription: "expected an integer, a string, true, false or null"))
                }
            }
        }
    }
}
