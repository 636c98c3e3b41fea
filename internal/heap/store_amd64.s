//go:build !race

#include "textflag.h"

// func storeHandles(hv []atomic.Uint64, slots []uint32, vals []uint64)
TEXT ·storeHandles(SB), NOSPLIT, $0-72
	MOVQ	hv_base+0(FP), DI
	MOVQ	slots_base+24(FP), SI
	MOVQ	slots_len+32(FP), CX
	MOVQ	vals_base+48(FP), DX
	TESTQ	CX, CX
	JEQ	done
loop:
	MOVL	(SI), AX
	MOVQ	(DX), BX
	MOVQ	BX, (DI)(AX*8)
	ADDQ	$4, SI
	ADDQ	$8, DX
	DECQ	CX
	JNE	loop
done:
	RET
