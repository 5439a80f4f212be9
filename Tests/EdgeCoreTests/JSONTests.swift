import Foundation
import Testing
@testable import EdgeCore

private func nested(_ depth: Int, inner: String = "") -> String {
    String(repeating: "[", count: depth) + inner + String(repeating: "]", count: depth)
}

@Suite("JSON.parse: the appliance's strict parser")
struct JSONParseTests {
    @Test("Given a kiosk scan document, when parsed, then every field is typed")
    func kioskDocument() throws {
        let v = try JSON.parse(#" { "scan_id" : "k1-000123", "qr":"Q", "n": -12.5e1, "ok": true, "no": false, "x": null, "a": [1, "2", {}] } "#)
        #expect(v["scan_id"] == .string("k1-000123"))
        #expect(v["n"] == .number(-125))
        #expect(v["ok"] == .bool(true))
        #expect(v["no"] == .bool(false))
        #expect(v["x"] == .null)
        #expect(v["x"]?.isNull == true)
        #expect(v["a"] == .array([.number(1), .string("2"), .object([:])]))
        #expect(v["missing"] == nil)
        #expect(v.objectValue?.count == 7)
    }

    @Test(
        "Given valid scalars and containers at the top level, when parsed, then they are accepted",
        arguments: [
            ("{}", JSON.object([:])), ("[]", .array([])), ("0", .number(0)), ("-0", .number(0)),
            ("1.5", .number(1.5)), ("1E+2", .number(100)), ("2e-3", .number(0.002)), ("0.25E1", .number(2.5)),
            ("\"\"", .string("")), ("true", .bool(true)), ("false", .bool(false)), ("null", .null),
            (" \t\r\n[ 1 , 2 ]\n", .array([.number(1), .number(2)])),
            (#"{"a":{"b":{"c":[]}}}"#, .object(["a": .object(["b": .object(["c": .array([])])])])),
        ])
    func validDocuments(_ text: String, _ expected: JSON) throws {
        #expect(try JSON.parse(text) == expected)
    }

    @Test(
        "Given escapes, when parsed, then they decode to the right characters",
        arguments: [
            (#""\u00e9""#, "é"), (#""\u00C9""#, "É"), (#""Ol\u00e1, Maria""#, "Olá, Maria"),
            (#""\ud83d\ude00""#, "😀"), (#""\uD834\uDD1E""#, "𝄞"), (#""a\"b\\c\/d""#, "a\"b\\c/d"),
            (#""\b\f\n\r\t""#, "\u{08}\u{0C}\n\r\t"), (#""\u0000""#, "\u{0}"), (#""\u2028""#, "\u{2028}"),
            ("\"Olá 😀 direct\"", "Olá 😀 direct"), (#""pre \u00e9 post ü""#, "pre é post ü"),
        ])
    func unicodeEscapes(_ text: String, _ expected: String) throws {
        #expect(try JSON.parse(text) == .string(expected))
    }

    @Test(
        "Given malformed JSON, when parsed, then it is rejected",
        arguments: [
            ("", "empty"), ("   ", "only whitespace"), (#"{"a":1} x"#, "trailing garbage"), ("{}{}", "two documents"),
            ("[1,2]]", "extra bracket"), (#"{"a":1,"a":2}"#, "duplicate keys"), (#"{"a":1,"b":{"c":1,"c":1}}"#, "nested duplicate keys"),
            (#""\ud83d""#, "lone high surrogate"), (#""\ude00""#, "lone low surrogate"), (#""\ud83dx""#, "high surrogate then text"),
            (#""\ud83d\ud83d""#, "two high surrogates"), (#""\ud83d\u0041""#, "high surrogate then BMP"),
            ("\"a\u{01}b\"", "control char U+0001"), ("\"line\nbreak\"", "raw newline in string"), ("\"tab\there\"", "raw tab in string"),
            ("\"x\\q\"", "unknown escape"), (#""\u12""#, "short unicode escape"), (#""\u12G4""#, "non-hex escape"),
            ("\"unterminated", "unterminated string"), ("\"ends with backslash\\", "unterminated escape"),
            ("01", "leading zero"), ("-01", "negative leading zero"), ("[00]", "double zero"), ("+1", "plus sign"),
            (".5", "bare fraction"), ("1.", "dot without digits"), ("1e", "exponent without digits"), ("-", "lone minus"),
            ("1e999", "overflows to infinity"), ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "minus Infinity"),
            ("0x10", "hex number"), ("tru", "truncated true"), ("True", "capitalised True"), ("nul", "truncated null"),
            ("[1,]", "trailing comma in array"), (#"{"a":1,}"#, "trailing comma in object"), ("{a:1}", "unquoted key"),
            ("{'a':1}", "single quotes"), (#"{"a" 1}"#, "missing colon"), ("[1 2]", "missing comma"), ("[", "unclosed array"),
            (#"{"a":"#, "missing value"), ("// c\n{}", "comment"), ("\u{FEFF}{}", "byte order mark"),
        ])
    func rejectsMalformed(_ text: String, _ why: String) {
        #expect(throws: JSON.ParseError.self, "\(why)") { try JSON.parse(text) }
    }

    @Test(
        "Given invalid UTF-8 bytes, when parsed, then they are rejected",
        arguments: [
            [0x22, 0xff, 0x22] as [UInt8],  // 0xFF never valid
            [0x22, 0xc3, 0x22],  // truncated 2-byte sequence
            [0x22, 0xc0, 0xaf, 0x22],  // overlong "/"
            [0x22, 0xed, 0xa0, 0x80, 0x22],  // UTF-8 encoded surrogate
            [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
            [0x22, 0x5c, 0x6e, 0x80, 0x22],  // lone continuation byte after an escape
            [0x7b, 0x22, 0xfe, 0x22, 0x3a, 0x31, 0x7d],  // bad key
            [0xc3, 0xa9],  // "é" outside a string
        ])
    func rejectsInvalidUTF8(_ bytes: [UInt8]) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(bytes) }
    }

    @Test("Given a failure, when reported, then it carries the byte offset")
    func errorOffset() {
        #expect(throws: JSON.ParseError(offset: 8, message: "trailing characters")) { try JSON.parse(#"{"a":1} x"#) }
    }

    @Test("Given nesting of 32 levels, when parsed, then it is accepted")
    func depthThirtyTwoAccepted() throws {
        #expect(throws: Never.self) { try JSON.parse(nested(32)) }
        #expect(throws: Never.self) { try JSON.parse(nested(32, inner: "1")) }
        var objects = #"{"k":1}"#
        for _ in 1..<32 { objects = #"{"k":"# + objects + "}" }
        #expect(throws: Never.self) { try JSON.parse(objects) }
    }

    @Test(
        "Given nesting deeper than 32, when parsed, then it is rejected",
        arguments: [34, 40, 100, 10_000])
    func deepNestingRejected(_ depth: Int) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(nested(depth)) }
        #expect(throws: JSON.ParseError.self) { try JSON.parse(nested(depth, inner: "1")) }
    }

    @Test("Given 33 nested arrays holding a value, when parsed, then it is rejected")
    func thirtyThreeWithValueRejected() {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(nested(33, inner: "1")) }
        var objects = #"{"k":1}"#
        for _ in 1..<33 { objects = #"{"k":"# + objects + "}" }
        #expect(throws: JSON.ParseError.self) { try JSON.parse(objects) }
    }

    @Test("Given 33 nested empty arrays, when parsed, then it is rejected like 33 arrays holding a value")
    func thirtyThreeEmptyRejected() {
        do {
            #expect(throws: JSON.ParseError.self) { try JSON.parse(nested(33)) }
            #expect(throws: JSON.ParseError.self) { try JSON.parse(#"{"a":"# + nested(32) + "}") }
        }
    }

    @Test("Given a custom maxDepth, when parsed, then it is honoured")
    func customDepth() {
        #expect(throws: Never.self) { try JSON.parse(Array("[[1]]".utf8), maxDepth: 2) }
        #expect(throws: JSON.ParseError.self) { try JSON.parse(Array("[[[1]]]".utf8), maxDepth: 2) }
    }

    @Test("Given booleans and numbers, when parsed, then a boolean is never a number")
    func booleansAreNotNumbers() throws {
        let t = try JSON.parse("true"), one = try JSON.parse("1"), zero = try JSON.parse("0"), f = try JSON.parse("false")
        #expect(t == .bool(true))
        #expect(t != .number(1))
        #expect(one != .bool(true))
        #expect(f != zero)
        #expect(t.doubleValue == nil)
        #expect(one.boolValue == nil)
        #expect(zero.boolValue == nil)
        #expect(t.boolValue == true)
        #expect(one.doubleValue == 1)
        #expect(JSON.string("1").doubleValue == nil)
        #expect(JSON.number(1).stringValue == nil)
    }
}

@Suite("JSON.text: serialization round trip")
struct JSONRoundTripTests {
    static let documents: [String] = [
        #"{"scan_id":"k1-000123","qr":"Olá \"Maria\"\n\t😀","ts":"2026-11-29T13:02:11Z"}"#,
        #"{"occupied":true,"people":0,"battery":{"pct":87.5,"low":false},"tags":[null,1e-7,-3,1e21]}"#,
        #"[0.1,0.2,1e15,123456789012345,-0.5,5e-324,1.7976931348623157e308,"\u0001\u001f\u007f"]"#,
        #"{"b":[],"a":{},"é":"\u00e9","\u2028":"x"}"#,
        #"{"samples":[{"patient_id":"6f1c2a9e-0000-4000-8000-000000000001","value":72,"unit":"bpm"}]}"#,
        "\"\"", "null", "true", "-1",
    ]

    @Test("Given a document, when serialized and parsed again, then it is the same value", arguments: documents)
    func roundTrip(_ text: String) throws {
        let v = try JSON.parse(text)
        let again = try JSON.parse(v.text)
        #expect(again == v)
        #expect(again.text == v.text, "serialization is stable")
    }

    @Test("Given an object, when serialized, then keys are sorted and output is compact")
    func sortedCompact() throws {
        let v = try JSON.parse(#"{ "z": 1, "a": [true, null], "m": "x" }"#)
        #expect(v.text == #"{"a":[true,null],"m":"x","z":1}"#)
    }

    @Test("Given whole and fractional numbers, when serialized, then whole numbers have no fraction")
    func numberText() {
        #expect(JSON.number(72).text == "72")
        #expect(JSON.number(22.4).text == "22.4")
        #expect(JSON.bool(true).text == "true")
        #expect(JSON.null.text == "null")
    }
}
