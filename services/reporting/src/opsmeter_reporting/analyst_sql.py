"""Analyst SQL that cannot leave its workspace (ADR 0051). Pure logic: no I/O.

Two parsers check every query. sqlglot (ClickHouse dialect) parses the analyst's text, allows one
``SELECT`` over the documented tables, and rewrites each table reference into a subquery filtered on
the caller's workspace, bound as a query parameter; the SQL that runs is sqlglot's rendering of that
tree, never the analyst's text, so a comment or a quoting trick cannot hide a token from the check.
ClickHouse's own parser then reads the rewritten SQL (``EXPLAIN AST``) and :func:`check_ast` accepts
it only if every function is on the allow-list and every table is a documented one inside its filter.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

DOCUMENTED_TABLES = (
    "llm_requests_raw",
    "llm_requests_hourly",
    "llm_requests_daily",
    "llm_requests_duplicates",
    "reporting_decisions",
)
"""docs/reporting-tables.md: the only tables an analyst query reads."""

WORKSPACE_PARAMETER = "opsmeter_workspace_id"
_CTE_PREFIX = "opsmeter_cte_"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""A quoted name with a newline would print as two lines of ``EXPLAIN AST`` (names are not escaped there)."""

_AGGREGATES = """
count sum avg min max any anylast anyheavy argmin argmax uniq uniqexact uniqcombined uniqcombined64 uniqhll12
uniqtheta median quantile quantiles quantileexact quantilesexact quantiletdigest quantilestdigest quantiletiming
quantilestiming quantiledeterministic medianexact mediantiming grouparray groupuniqarray grouparraysorted
grouparrayinsertat groupbitand groupbitor groupbitxor topk topkweighted stddevpop stddevsamp varpop varsamp
covarpop covarsamp corr sumwithoverflow summap minmap maxmap avgweighted simplelinearregression histogram
entropy mode deltasum first_value last_value row_number rank dense_rank percent_rank cume_dist ntile
laginframe leadinframe nth_value lag lead sumkahan skewpop skewsamp kurtpop kurtsamp
"""
_COMBINATORS = ("if", "distinct", "ornull", "ordefault", "array", "merge", "state", "foreach", "map")

_SCALARS = """
plus minus multiply divide intdiv intdivorzero modulo moduloorzero negate abs gcd lcm
equals notequals less greater lessorequals greaterorequals and or not xor isnull isnotnull isnotdistinctfrom
in notin nullin notnullin globalin globalnotin like notlike ilike notilike match multimatchany
if multiif case coalesce ifnull nullif assumenotnull tonullable isfinite isinfinite isnan
tuple tupleelement array arrayelement arrayelementornull map mapkeys mapvalues mapcontains lambda
cast _cast accuratecast accuratecastornull
tostring tofixedstring tostringcuttozero todate todate32 todateornull todatetime todatetime64 todatetimeornull
todecimal32 todecimal64 todecimal128 todecimal256 todecimalstring tofloat32 tofloat64 toint8 toint16 toint32
toint64 toint128 touint8 touint16 touint32 touint64 touint128 tobool touuid toint64ornull tofloat64ornull
touint64ornull toint32ornull touint32ornull tofloat64orzero toint64orzero touint64orzero reinterpretasstring
now now64 today yesterday timezone totimezone totypename
toyear toquarter tomonth todayofyear todayofmonth todayofweek tohour tominute tosecond tounixtimestamp
tounixtimestamp64milli tounixtimestamp64micro fromunixtimestamp fromunixtimestamp64milli tostartofyear
tostartofquarter tostartofmonth tostartofweek tomonday tostartofday tostartofhour tostartofminute
tostartoffiveminutes tostartoffifteenminutes tostartoftenminutes tostartofinterval tostartofisoyear toyyyymm
toyyyymmdd toyyyymmddhhmmss toisoyear toisoweek toweek toyearweek torelativedaynum torelativehournum
torelativemonthnum torelativeweeknum date_trunc datetrunc datediff date_diff dateadd date_add datesub date_sub
age timestampadd timestamp_add timestampsub timestamp_sub formatdatetime parsedatetimebesteffort
parsedatetimebesteffortornull parsedatetime64besteffort tointervalsecond tointervalminute tointervalhour
tointervalday tointervalweek tointervalmonth tointervalquarter tointervalyear addseconds addminutes addhours
adddays addweeks addmonths addquarters addyears subtractseconds subtractminutes subtracthours subtractdays
subtractweeks subtractmonths subtractquarters subtractyears timeslot timeslots
length empty notempty lengthutf8 lower upper lowerutf8 upperutf8 concat concatwithseparator substring
substringutf8 substr left right leftpad rightpad trim trimleft trimright trimboth position positionutf8
positioncaseinsensitive locate startswith endswith replace replaceall replaceone replaceregexpall
replaceregexpone extract extractall splitbychar splitbystring splitbyregexp arraystringconcat format
reverse repeat base64encode base64decode hex unhex lpad rpad
jsonextract jsonextractstring jsonextractint jsonextractuint jsonextractfloat jsonextractbool jsonextractraw
jsonextractkeys jsonhas jsonlength jsontype simplejsonextractstring simplejsonextractint
simplejsonextractfloat simplejsonextractbool simplejsonextractraw simplejsonhas
arrayjoin arraymap arrayfilter arraycount arraysum arrayavg arraymin arraymax arraysort arrayreversesort
arraydistinct arrayuniq arrayslice arrayconcat arrayreverse arrayzip arrayenumerate arrayexists arrayall
arrayfirst arraylast arrayflatten arraycompact arraypushback arraypushfront arrayresize range has hasall
hasany indexof countequal emptyarraystring
round roundbankers floor ceil ceiling trunc truncate sqrt cbrt exp log ln log2 log10 pow power greatest least
sign pi e sin cos tan
formatreadablesize formatreadablequantity formatreadabletimedelta formatreadabledecimalsize
sipHash64 cityhash64 xxhash64 md5 sha256 generateuuidv4 isvalidjson todecimalorzero
"""

_AGGREGATE_NAMES = frozenset(_AGGREGATES.split())
ALLOWED_FUNCTIONS = frozenset(_SCALARS.lower().split()) | _AGGREGATE_NAMES
"""ClickHouse function names (lower case) an analyst query may call; none reads a file, a URL, a table
or the server's state. Aggregates also take the combinators in ``_COMBINATORS``."""

_SET_MEMBERSHIP = frozenset(
    ["in", "notin", "nullin", "notnullin", "globalin", "globalnotin", "globalnullin", "globalnotnullin"]
)
"""``x IN t`` reads table ``t`` when ``t`` is a bare name, so these functions take no identifier there."""

_AST_NODES = frozenset(
    [
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "SelectQuery",
        "ExpressionList",
        "TablesInSelectQuery",
        "TablesInSelectQueryElement",
        "TableExpression",
        "TableIdentifier",
        "TableJoin",
        "ArrayJoin",
        "Subquery",
        "WithElement",
        "Function",
        "Identifier",
        "Literal",
        "Asterisk",
        "QualifiedAsterisk",
        "ColumnsListMatcher",
        "ColumnsRegexpMatcher",
        "QualifiedColumnsListMatcher",
        "QualifiedColumnsRegexpMatcher",
        "OrderByElement",
        "WindowDefinition",
        "WindowListElement",
        "Alias",
        "Interpolate",
    ]
)
"""Kinds of node in ClickHouse's ``EXPLAIN AST`` that an analyst query may contain (no ``Set``: SETTINGS)."""


class AnalystSqlRefused(ValueError):
    """Why a query may not run. The message never repeats the query."""


class AnalystBusy(RuntimeError):
    """The caller already has a query running."""


@dataclass(frozen=True)
class AnalystLimits:
    """What one analyst query may use; a workspace's are tighter than the operator's."""

    max_execution_s: float
    max_memory_bytes: int
    max_threads: int

    def settings(self, max_rows: int) -> dict[str, object]:
        """ClickHouse settings of the query; ``readonly`` last, since it forbids changing the ones after it."""
        return {
            "max_execution_time": self.max_execution_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
            "max_threads": self.max_threads,
            "max_result_rows": max_rows + 1,
            "result_overflow_mode": "break",
            "readonly": 1,
        }


@dataclass(frozen=True)
class AnalystQuery:
    """The SQL that runs (sqlglot's rendering of the checked, rewritten tree) and its bound parameters."""

    sql: str
    parameters: dict[str, str] = field(default_factory=dict)
    workspace_id: str | None = None


def prepare(sql: str, workspace_id: str | None) -> AnalystQuery:
    """Check one analyst query and, for a workspace, filter every table it reads to that workspace.

    ``workspace_id=None`` is the operator: the same checks, no filter.
    """
    try:
        return _prepare(sql, workspace_id)
    except RecursionError:
        raise AnalystSqlRefused("the query is nested too deeply") from None


def _prepare(sql: str, workspace_id: str | None) -> AnalystQuery:
    try:
        statements = [s for s in sqlglot.parse(sql, read="clickhouse") if s is not None]
    except (ParseError, TokenError) as exc:
        raise AnalystSqlRefused(f"the query is not valid ClickHouse SQL{_where(exc)}") from None
    if len(statements) != 1:
        raise AnalystSqlRefused("one statement at a time")
    [root] = statements
    if not isinstance(root, exp.Select | exp.SetOperation):
        raise AnalystSqlRefused("only SELECT queries run here")
    _refuse_clauses(root)
    ctes = _rename_ctes(root)
    for table in list(root.find_all(exp.Table)):
        _rewrite_table(table, ctes, workspace_id)
    rendered = root.sql(dialect="clickhouse", comments=False)
    parameters = {WORKSPACE_PARAMETER: workspace_id} if workspace_id is not None else {}
    return AnalystQuery(rendered, parameters, workspace_id)


def _where(exc: ParseError | TokenError) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors and errors[0].get("line") is not None:
        return f" (line {errors[0]['line']}, column {errors[0]['col']})"
    return ""


def _refuse_clauses(root: exp.Expr) -> None:
    for node in root.walk():
        if isinstance(node, exp.Command):
            raise AnalystSqlRefused("only SELECT queries run here")
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise AnalystSqlRefused("query parameters are not accepted; write values as literals")
        if isinstance(node, exp.Identifier) and _CONTROL.search(node.name):
            raise AnalystSqlRefused("names may not contain control characters")
        if isinstance(node, exp.Into):
            raise AnalystSqlRefused("INTO is not allowed")
        if isinstance(node, exp.Query) and (node.args.get("settings") or node.args.get("format")):
            raise AnalystSqlRefused("SETTINGS and FORMAT are chosen by the service")


def _rename_ctes(root: exp.Expr) -> dict[int, str]:
    """Give every table-like CTE a name no real table has; return ``id(CTE) -> new name``.

    A reference the scoping below resolves to a CTE then names the CTE and nothing else: were ClickHouse
    to resolve it differently, it would find no such table and fail, not read another table.
    """
    renamed: dict[int, str] = {}
    for i, cte in enumerate(root.find_all(exp.CTE)):
        if cte.args.get("scalar") or not isinstance(cte.this, exp.Query):
            continue
        new_name = f"{_CTE_PREFIX}{i}"
        renamed[id(cte)] = new_name
        cte.meta["original_name"] = cte.alias
        cte.set(
            "alias", exp.TableAlias(this=exp.to_identifier(new_name), columns=cte.args["alias"].args.get("columns"))
        )
    return renamed


def _visible_cte(table: exp.Table, name: str, renamed: dict[int, str]) -> str | None:
    """The new name of the CTE ``name`` refers to at ``table``, if one is in scope; else None.

    A CTE is visible in the query that declares it and below, and inside a sibling CTE declared after it.
    """
    child: exp.Expr = table
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            visible = ctes
            if child is with_:
                inner = _containing(ctes, table)
                visible = ctes[: ctes.index(inner)] if inner is not None else []
            for cte in reversed(visible):
                if id(cte) in renamed and cte.meta.get("original_name") == name:
                    return renamed[id(cte)]
        child, node = node, node.parent
    return None


def _containing(ctes: Sequence[exp.Expr], node: exp.Expr) -> exp.Expr | None:
    for cte in ctes:
        parent: exp.Expr | None = node
        while parent is not None:
            if parent is cte:
                return cte
            parent = parent.parent
    return None


def _rewrite_table(table: exp.Table, renamed: dict[int, str], workspace_id: str | None) -> None:
    if not isinstance(table.this, exp.Identifier):
        function = table.this.name if isinstance(table.this, exp.Func) else ""
        raise AnalystSqlRefused(f"table functions{f' ({function})' if function else ''} are not allowed")
    if table.args.get("db") or table.args.get("catalog"):
        raise AnalystSqlRefused(f"name tables without a database; the tables are {', '.join(DOCUMENTED_TABLES)}")
    extra = [k for k, v in table.args.items() if v and k not in ("this", "alias")]
    if extra in (["joins"], ["laterals"]):
        raise AnalystSqlRefused("write joins without parentheses around them")
    if extra:
        raise AnalystSqlRefused(f"{extra[0].upper()} is not supported on a table here")
    name = table.name
    cte = _visible_cte(table, name, renamed)
    if cte is not None:
        table.set("this", exp.to_identifier(cte))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        return
    if name not in DOCUMENTED_TABLES:
        raise AnalystSqlRefused(f"unknown table {name[:64]!r}; the tables are {', '.join(DOCUMENTED_TABLES)}")
    target: exp.Expr = table.parent if isinstance(table.parent, exp.Final) else table
    source: exp.Expr = exp.Table(this=exp.to_identifier(name))
    if target is not table:
        source = exp.Final(this=source)
    inner = exp.select("*").from_(source)
    if workspace_id is not None:
        inner = inner.where(
            exp.EQ(
                this=exp.column("workspace_id"),
                expression=exp.Placeholder(
                    this=WORKSPACE_PARAMETER, kind=exp.DataType.build("String", dialect="clickhouse")
                ),
            )
        )
    alias = table.alias or name
    target.replace(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias))))


# --- the engine's own parse of the rewritten query ---------------------------------------------------

_AST_LINE = re.compile(r"^( *)(\w+)(?: (\S+))?")


@dataclass
class AstNode:
    kind: str
    name: str
    line: str
    children: list["AstNode"] = field(default_factory=list)


def parse_explain_ast(lines: Iterable[str]) -> AstNode:
    """ClickHouse's ``EXPLAIN AST`` text (one node a line, one space of indent a level) as a tree."""
    root = AstNode("Root", "", "")
    stack: list[tuple[int, AstNode]] = [(-1, root)]
    for line in lines:
        match = _AST_LINE.match(line)
        if not match:
            raise AnalystSqlRefused("the engine could not check the query")
        depth = len(match.group(1))
        node = AstNode(match.group(2), match.group(3) or "", line)
        while stack[-1][0] >= depth:
            stack.pop()
        stack[-1][1].children.append(node)
        stack.append((depth, node))
    return root


def check_ast(lines: Iterable[str], workspace_id: str | None) -> None:
    """Accept the engine's parse of a prepared query only if it calls allowed functions and reads
    documented tables, each (for a workspace) in a subquery filtered on that workspace."""
    _check_node(parse_explain_ast(lines), workspace_id, [])


def _check_node(node: AstNode, workspace_id: str | None, parents: list[AstNode]) -> None:
    if node.kind != "Root" and node.kind not in _AST_NODES:
        raise AnalystSqlRefused(f"{node.kind} is not allowed in an analyst query")
    if node.kind == "Function":
        if not allowed_function(node.name):
            raise AnalystSqlRefused(f"the function {node.name[:64]} is not allowed in an analyst query")
        if node.name.lower() in _SET_MEMBERSHIP:
            arguments = node.children[0].children if node.children else []
            if len(arguments) > 1 and arguments[1].kind in ("Identifier", "TableIdentifier"):
                raise AnalystSqlRefused("IN takes a list or a subquery, not a table name")
    if node.kind == "TableExpression" and any(child.kind == "Function" for child in node.children):
        raise AnalystSqlRefused("table functions are not allowed")
    if node.kind == "TableIdentifier":
        _check_table(node, workspace_id, parents)
    for child in node.children:
        _check_node(child, workspace_id, [*parents, node])


def _check_table(node: AstNode, workspace_id: str | None, parents: list[AstNode]) -> None:
    if node.name.startswith(_CTE_PREFIX) and "." not in node.name:
        return
    if node.name not in DOCUMENTED_TABLES:
        raise AnalystSqlRefused(f"unknown table {node.name[:64]!r}; the tables are {', '.join(DOCUMENTED_TABLES)}")
    if workspace_id is None:
        return
    select = next((p for p in reversed(parents) if p.kind == "SelectQuery"), None)
    expected = f"Literal {_ast_string(workspace_id)}"
    filtered = select is not None and any(
        child.kind == "Function"
        and child.name == "equals"
        and [a.line.strip() for a in child.children[0].children] == ["Identifier workspace_id", expected]
        for child in select.children
    )
    if not filtered:
        raise AnalystSqlRefused(f"the table {node.name} is read without the workspace filter")


def _ast_string(value: str) -> str:
    """A string literal as ``EXPLAIN AST`` prints it."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def allowed_function(name: str) -> bool:
    lowered = name.lower()
    if lowered in ALLOWED_FUNCTIONS:
        return True
    for combinator in _COMBINATORS:
        if lowered.endswith(combinator) and allowed_aggregate(lowered[: -len(combinator)]):
            return True
    return False


def allowed_aggregate(lowered: str) -> bool:
    if lowered in frozenset(_AGGREGATES.split()):
        return True
    return any(
        lowered.endswith(c) and allowed_aggregate(lowered[: -len(c)]) for c in _COMBINATORS if len(lowered) > len(c)
    )
