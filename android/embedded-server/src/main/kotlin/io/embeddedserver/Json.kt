package io.embeddedserver

/**
 * A minimal JSON reader and writer for the few documents that cross the JNI boundary, so the
 * library needs no JSON dependency. Objects become `Map<String, Any?>`, arrays `List<Any?>`,
 * integers `Long` (`Double` when fractional or too large).
 */
internal object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipSpace()
        if (reader.pos != text.length) throw reader.error("trailing characters")
        return value
    }

    fun quote(s: String): String = buildString {
        append('"')
        for (c in s) when {
            c == '"' -> append("\\\"")
            c == '\\' -> append("\\\\")
            c < ' ' -> append("\\u%04x".format(c.code))
            else -> append(c)
        }
        append('"')
    }

    private class Reader(val s: String) {
        var pos = 0

        fun error(what: String) = EmbeddedServerException("bad JSON from the native library at $pos: $what")

        fun skipSpace() {
            while (pos < s.length && s[pos].isWhitespace()) pos++
        }

        fun value(): Any? {
            skipSpace()
            if (pos >= s.length) throw error("unexpected end")
            return when (val c = s[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c.isDigit()) number() else throw error("unexpected '$c'")
            }
        }

        private fun literal(word: String, value: Any?): Any? {
            if (!s.startsWith(word, pos)) throw error("expected $word")
            pos += word.length
            return value
        }

        private fun expect(c: Char) {
            skipSpace()
            if (pos >= s.length || s[pos] != c) throw error("expected '$c'")
            pos++
        }

        private fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            expect('{')
            skipSpace()
            if (s.getOrNull(pos) == '}') return map.also { pos++ }
            while (true) {
                skipSpace()
                val key = string()
                expect(':')
                map[key] = value()
                skipSpace()
                if (s.getOrNull(pos) == ',') pos++ else break
            }
            expect('}')
            return map
        }

        private fun array(): List<Any?> {
            val list = ArrayList<Any?>()
            expect('[')
            skipSpace()
            if (s.getOrNull(pos) == ']') return list.also { pos++ }
            while (true) {
                list.add(value())
                skipSpace()
                if (s.getOrNull(pos) == ',') pos++ else break
            }
            expect(']')
            return list
        }

        private fun string(): String {
            expect('"')
            val out = StringBuilder()
            while (true) {
                if (pos >= s.length) throw error("unterminated string")
                val c = s[pos++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        when (val e = s.getOrNull(pos++)) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000c')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (pos + 4 > s.length) throw error("bad escape")
                                out.append(s.substring(pos, pos + 4).toInt(16).toChar())
                                pos += 4
                            }
                            else -> throw error("bad escape")
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Any {
            val start = pos
            while (pos < s.length && (s[pos].isDigit() || s[pos] in "+-.eE")) pos++
            val text = s.substring(start, pos)
            return text.toLongOrNull() ?: text.toDoubleOrNull() ?: throw error("bad number '$text'")
        }
    }
}

internal fun Map<String, Any?>.str(key: String): String? = this[key] as? String
internal fun Map<String, Any?>.long(key: String): Long? = (this[key] as? Number)?.toLong()
internal fun Map<String, Any?>.bool(key: String): Boolean = this[key] as? Boolean ?: false

@Suppress("UNCHECKED_CAST")
internal fun jsonObject(text: String): Map<String, Any?> =
    Json.parse(text) as? Map<String, Any?> ?: throw EmbeddedServerException("expected a JSON object from the native library")
