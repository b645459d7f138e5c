package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// scanPickle walks the opcodes of a pickle stream before it is decoded and
// returns how many it has. The decoder (gopickle) allocates the length an
// opcode declares before reading it, so a 6-byte BINBYTES8 claiming a
// terabyte would abort the process with a fatal out-of-memory error; the
// scan refuses every declared length that runs past the end of the data,
// and the opcode count bounds the objects the decoder can build (each
// opcode builds at most one), which Open charges to its memory limit.
// Bytes after STOP are not decoded and not scanned.
func scanPickle(data []byte) (ops int, err error) {
	pos, at := 0, 0 // the read position, the current opcode's
	need := func(n uint64, op byte) error {
		if n > uint64(len(data)-pos) {
			return fmt.Errorf("opcode 0x%02x at byte %d declares %d bytes, but only %d remain: %w", op, at, n, len(data)-pos, errTruncated)
		}
		pos += int(n)
		return nil
	}
	for {
		if pos >= len(data) {
			return ops, fmt.Errorf("the pickle ends after %d bytes without a STOP opcode: %w", len(data), errTruncated)
		}
		op := data[pos]
		at = pos
		pos++
		ops++
		var err error
		switch op {
		case '.': // STOP
			return ops, nil
		case '(', '0', '1', '2', 'N', 'R', 'Q', ']', 'a', 'b', 'd', '}', 'e', 'l', ')', 's', 't', 'u', 'o',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
			// no argument
		case 'K', 'h', 'q', 0x80, 0x82: // one byte
			err = need(1, op)
		case 'M', 0x83: // two bytes
			err = need(2, op)
		case 'J', 'j', 'r', 0x84: // four bytes
			err = need(4, op)
		case 'G', 0x95: // BINFLOAT; FRAME (its length only: the framed opcodes follow)
			if err = need(8, op); err == nil && op == 0x95 {
				n := binary.LittleEndian.Uint64(data[pos-8:])
				if n > uint64(len(data)-pos) {
					err = fmt.Errorf("a pickle frame at byte %d declares %d bytes, but only %d remain: %w", at, n, len(data)-pos, errTruncated)
				}
			}
		case 'U', 0x8c, 'C', 0x8a: // a one-byte length, then the bytes
			if err = need(1, op); err == nil {
				err = need(uint64(data[pos-1]), op)
			}
		case 'T', 'X', 'B', 0x8b: // a four-byte length
			if err = need(4, op); err == nil {
				err = need(uint64(binary.LittleEndian.Uint32(data[pos-4:])), op)
			}
		case 0x8d, 0x8e, 0x96: // an eight-byte length
			if err = need(8, op); err == nil {
				err = need(binary.LittleEndian.Uint64(data[pos-8:]), op)
			}
		case 'I', 'L', 'F', 'S', 'V', 'g', 'p', 'P': // one line
			err = skipLine(data, &pos, op, at)
		case 'c', 'i': // GLOBAL, INST: two lines
			if err = skipLine(data, &pos, op, at); err == nil {
				err = skipLine(data, &pos, op, at)
			}
		default:
			return ops, fmt.Errorf("unknown pickle opcode 0x%02x at byte %d", op, at)
		}
		if err != nil {
			return ops, err
		}
	}
}

func skipLine(data []byte, pos *int, op byte, at int) error {
	i := bytes.IndexByte(data[*pos:], '\n')
	if i < 0 {
		return fmt.Errorf("opcode 0x%02x at byte %d has no end of line: %w", op, at, errTruncated)
	}
	*pos += i + 1
	return nil
}
