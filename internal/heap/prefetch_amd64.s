#include "textflag.h"

// func prefetch(addrs []uintptr)
TEXT ·prefetch(SB), NOSPLIT, $0-24
	MOVQ	addrs_base+0(FP), SI
	MOVQ	addrs_len+8(FP), CX
	TESTQ	CX, CX
	JEQ	done
loop:
	MOVQ	(SI), AX
	PREFETCHT0	(AX)
	ADDQ	$8, SI
	DECQ	CX
	JNE	loop
done:
	RET

// func prefetchw(addrs []uintptr)
TEXT ·prefetchw(SB), NOSPLIT, $0-24
	MOVQ	addrs_base+0(FP), SI
	MOVQ	addrs_len+8(FP), CX
	TESTQ	CX, CX
	JEQ	donew
loopw:
	MOVQ	(SI), AX
	// PREFETCHW (AX), which the assembler does not know: 0F 0D /1.
	BYTE	$0x0F; BYTE $0x0D; BYTE $0x08
	ADDQ	$8, SI
	DECQ	CX
	JNE	loopw
donew:
	RET
