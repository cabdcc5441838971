"""The reading path reads top to bottom (issue 14): no function over ~60 lines, and comments as dense as in the
codebases STYLE.md points to (nanoGPT's model.py 33%, train.py 39%).

    python tests/test_readability.py     prints each file's comment share and its longest function
"""

import ast
import io
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The files a reader opens first: the stages, the diffusion maths, the network, the loop and the cascade.
READING_PATH = ["stage1_generator.py", "stage2_cascader.py", "stage3_superres.py", "vocoder.py", "residual.py",
                "diffusion.py", "unet1d.py", "train.py", "checkpoint.py", "sample.py"]
MAX_FUNCTION_LINES = 60
MIN_COMMENT_SHARE = 0.30


def comment_share(path):
    """Comment and docstring lines as a share of non-blank lines."""
    source = path.read_text()
    commented = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            commented.add(tok.start[0])
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            commented.update(range(body[0].lineno, body[0].end_lineno + 1))          # a docstring
    lines = [i + 1 for i, line in enumerate(source.splitlines()) if line.strip()]
    return sum(i in commented for i in lines) / len(lines)


def longest_function(path):
    """(lines, name) of the longest function or method, docstring included."""
    tree = ast.parse(path.read_text())
    sizes = [(n.end_lineno - n.lineno + 1, n.name) for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return max(sizes) if sizes else (0, "")


@pytest.mark.parametrize("name", READING_PATH)
def test_functions_are_short(name):
    lines, function = longest_function(ROOT / name)
    assert lines <= MAX_FUNCTION_LINES, f"{name}: {function} is {lines} lines; split it into named steps"


@pytest.mark.parametrize("name", READING_PATH)
def test_comment_density(name):
    share = comment_share(ROOT / name)
    assert share >= MIN_COMMENT_SHARE, f"{name}: comments are {share:.0%} of its lines (at least 30% wanted)"


if __name__ == "__main__":
    for name in READING_PATH + sys.argv[1:]:
        lines, function = longest_function(ROOT / name)
        print(f"{name:<22} comments {comment_share(ROOT / name):.0%}   longest function {function} ({lines} lines)")
