package checkpoint

import (
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
)

// A dict pickled by Python 3.11 at protocols 2 and 4 with values of
// classes remask does not know (a reduce-built scalar, an object restored by
// BUILD, a set), a ModelMode member, an int beyond int64 and an int key:
//
//	{"scalar": numpy_like.Scalar(1.5), "obj": numpy_like.Obj(x=1, y=[1, 2]),
//	 "mode": ModelMode.SEQUENCE_SCORER, "big": 2**70, "tuple": (1, "a"),
//	 "set": {3}, 7: "seven", "none": None, "f": 0.25, "t": True}
var unknownClassPickles = map[string]string{
	"protocol 2": "80027d71002858060000007363616c61727101636e756d70795f6c696b650a5363616c61720a7102473ff800000000000085710352710458030000006f626a7105636e756d70795f6c696b650a4f626a0a7106298171077d71082858010000007871094b01580100000079710a5d710b284b014b0265756258040000006d6f6465710c635f5f6275696c74696e5f5f0a676574617474720a710d636d6f64656c0a4d6f64656c4d6f64650a710e580f00000053455155454e43455f53434f524552710f867110527111580300000062696771128a0900000000000000004058050000007475706c6571134b01580100000061711486711558030000007365747116635f5f6275696c74696e5f5f0a7365740a71175d71184b036185711952711a4b075805000000736576656e711b58040000006e6f6e65711c4e580100000066711d473fd0000000000000580100000074711e88752e",
	"protocol 4": "800495f8000000000000007d94288c067363616c6172948c0a6e756d70795f6c696b65948c065363616c6172949394473ff8000000000000859452948c036f626a9468028c034f626a9493942981947d94288c0178944b018c0179945d94284b014b026575628c046d6f6465948c086275696c74696e73948c07676574617474729493948c056d6f64656c948c094d6f64656c4d6f64659493948c0f53455155454e43455f53434f52455294869452948c03626967948a090000000000000000408c057475706c65944b018c01619486948c03736574948f94284b03904b078c05736576656e948c046e6f6e65944e8c016694473fd00000000000008c01749488752e",
}

func TestUnpickleTolerance(t *testing.T) {
	for name, h := range unknownClassPickles {
		t.Run(name, func(t *testing.T) {
			data, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			v, err := unpickle(data, nil, newBudget(Limits{}, int64(len(data))))
			if err != nil {
				t.Fatal(err)
			}
			nv, err := normalize(v, 0)
			if err != nil {
				t.Fatal(err)
			}
			d, ok := nv.(Dict)
			if !ok {
				t.Fatalf("decoded %T, want Dict", nv)
			}
			if o, ok := d["scalar"].(*Opaque); !ok || o.Class != "numpy_like.Scalar" {
				t.Errorf("scalar = %#v, want an Opaque numpy_like.Scalar", d["scalar"])
			}
			if o, ok := d["obj"].(*Opaque); !ok || o.Class != "numpy_like.Obj" {
				t.Errorf("obj = %#v, want an Opaque numpy_like.Obj", d["obj"])
			}
			if d["mode"] != ModelMode("sequence_scorer") {
				t.Errorf("mode = %#v", d["mode"])
			}
			if b, ok := d["big"].(*big.Int); !ok || b.String() != "1180591620717411303424" {
				t.Errorf("big = %#v", d["big"])
			}
			if tu, ok := d["tuple"].([]any); !ok || len(tu) != 2 || tu[0] != 1 || tu[1] != "a" {
				t.Errorf("tuple = %#v", d["tuple"])
			}
			if d[7] != "seven" || d["none"] != nil || d["f"] != 0.25 || d["t"] != true {
				t.Errorf("dict %#v", d)
			}
			// Such values are refused where remask needs a value.
			if _, err := optInt(d, "scalar"); err == nil || !strings.Contains(err.Error(), "a pickled numpy_like.Scalar object") {
				t.Errorf("optInt(scalar) error %v", err)
			}
		})
	}
}

func TestUnpickleMalformed(t *testing.T) {
	for _, data := range [][]byte{
		nil,
		{0x80, 0x02},                // no STOP
		{0x80, 0x02, '(', 'u', '.'}, // SETITEMS without a dict
		{0x80, 0x02, 'X', 0xff, 0xff, 0xff, 0x7f},
		[]byte("not a pickle at all"),
	} {
		if _, err := unpickle(data, nil, newBudget(Limits{}, int64(len(data)))); err == nil {
			t.Errorf("unpickle(%q) gave no error", data)
		}
	}
}
