"""A program's step tree flattened into instructions with jumps, for a position that is a
single number (the program counter) plus loop counters: easy to checkpoint and to resume.

``repeat`` becomes ``LoopEnter`` … body … ``LoopNext``; ``for_each`` iterations and other
sequences are inlined. Tags map to the instruction that starts the tagged node.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellrig.protocols.program import Node, Program, Repeat, Sequence, Step


@dataclass(frozen=True, slots=True)
class Exec:
    """Run one step."""

    step: Step


@dataclass(frozen=True, slots=True)
class LoopEnter:
    """Start a loop: reset its counter; skip it (to ``exit_pc``) when its count is 0."""

    loop: int
    exit_pc: int


@dataclass(frozen=True, slots=True)
class LoopNext:
    """End of one iteration: count it, check the loop's conditions, go back or go on."""

    loop: int
    body_pc: int


Instruction = Exec | LoopEnter | LoopNext


@dataclass(frozen=True, slots=True)
class Compiled:
    """The instructions, the loops by index, and where each tag starts."""

    instructions: tuple[Instruction, ...]
    loops: tuple[Repeat, ...]
    tags: dict[str, int]
    steps: dict[int, Step]


def compile_program(program: Program) -> Compiled:
    """Flatten ``program`` into instructions."""
    instructions: list[Instruction] = []
    loops: list[Repeat] = []
    tags: dict[str, int] = {}
    steps: dict[int, Step] = {}

    def emit(nodes: tuple[Node, ...]) -> None:
        for node in nodes:
            if node.tag is not None:
                tags[node.tag] = len(instructions)
            if isinstance(node, Repeat):
                index = len(loops)
                loops.append(node)
                enter_at = len(instructions)
                instructions.append(LoopEnter(index, -1))
                body_pc = len(instructions)
                emit(node.steps)
                instructions.append(LoopNext(index, body_pc))
                instructions[enter_at] = LoopEnter(index, len(instructions))
            elif isinstance(node, Sequence):
                emit(node.steps)
            else:
                steps[node.id] = node
                instructions.append(Exec(node))

    emit(program.steps)
    return Compiled(tuple(instructions), tuple(loops), tags, steps)
