import Foundation

/// Splits RFC 4180 text with `;` cells and CRLF lines (quoted cells may hold `;`, `"` and newlines).
public func csvRows(_ text: String) -> [[String]] {
    var rows: [[String]] = [], row: [String] = [], cell = ""
    var quoted = false
    let s = text.unicodeScalars
    var i = s.startIndex
    while i < s.endIndex {
        let c = s[i]
        if quoted {
            if c == "\"" {
                let n = s.index(after: i)
                if n < s.endIndex && s[n] == "\"" { cell.unicodeScalars.append("\""); i = n } else { quoted = false }
            } else {
                cell.unicodeScalars.append(c)
            }
        } else if c == "\"" && cell.isEmpty {
            quoted = true
        } else if c == ";" {
            row.append(cell); cell = ""
        } else if c == "\r" {
            let n = s.index(after: i)
            if n < s.endIndex && s[n] == "\n" { i = n }
            row.append(cell); rows.append(row); row = []; cell = ""
        } else {
            cell.unicodeScalars.append(c)
        }
        i = s.index(after: i)
    }
    if !cell.isEmpty || !row.isEmpty { row.append(cell); rows.append(row) }
    return rows
}
