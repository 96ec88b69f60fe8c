//! Measure filters: a condition on a stream's fields, written in SQL and parsed by the
//! `sqlparser` crate, checked against the declaration and evaluated on records.

use std::cmp::Ordering;
use std::fmt;

use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value as Literal};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::{FieldType, StreamSchema, Value};
use crate::event::{Label, Record};

/// A condition on the fields of one stream's records.
///
/// The SQL subset: comparisons of a field with a literal (`=`, `<>`, `!=`, `<`, `<=`, `>`,
/// `>=`), `[NOT] IN (...)`, `[NOT] BETWEEN ... AND ...`, a `bool` field alone or with
/// `IS [NOT] TRUE|FALSE`, combined with `AND`, `OR`, `NOT` and parentheses. Strings are in
/// single quotes; literals must have the field's type.
///
/// # Examples
/// ```
/// use diffmill::declare::{Filter, FieldType, StreamSpec};
/// use diffmill::event::StreamKind;
///
/// let schema = StreamSpec::new("conversion_id", "ts")
///     .parent("click_id")
///     .field("conversion_id", FieldType::Id)
///     .field("click_id", FieldType::Id)
///     .field("ts", FieldType::Timestamp)
///     .field("type", FieldType::String)
///     .resolve(StreamKind::Conversion)
///     .unwrap();
/// assert!(Filter::parse(&schema, "type = 'order' OR type IN ('pay', 'refund')").is_ok());
/// let missing = Filter::parse(&schema, "kind = 'order'").unwrap_err();
/// assert!(missing.contains("`kind` is not a field of the conversion stream"), "{missing}");
/// assert!(Filter::parse(&schema, "type = 7").is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    text: String,
    predicate: Predicate,
}

#[derive(Clone, Debug, PartialEq)]
enum Predicate {
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
    Compare {
        field: usize,
        op: Comparison,
        value: Value,
    },
    In {
        field: usize,
        values: Vec<Value>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Eq => ordering == Ordering::Equal,
            Comparison::NotEq => ordering != Ordering::Equal,
            Comparison::Lt => ordering == Ordering::Less,
            Comparison::LtEq => ordering != Ordering::Greater,
            Comparison::Gt => ordering == Ordering::Greater,
            Comparison::GtEq => ordering != Ordering::Less,
        }
    }

    /// The comparison with its operands swapped (`3 < x` is `x > 3`).
    fn flipped(self) -> Comparison {
        match self {
            Comparison::Lt => Comparison::Gt,
            Comparison::LtEq => Comparison::GtEq,
            Comparison::Gt => Comparison::Lt,
            Comparison::GtEq => Comparison::LtEq,
            other => other,
        }
    }
}

impl Filter {
    /// Parses `text` as a condition on `schema`'s fields.
    ///
    /// # Errors
    /// A message: the SQL does not parse, uses what the subset lacks, names a field the
    /// stream does not have, or compares a field with a literal of another type.
    pub fn parse(schema: &StreamSchema, text: &str) -> Result<Filter, String> {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| format!("filter `{text}`: {e}"))?;
        let expr = parser
            .parse_expr()
            .map_err(|e| format!("filter `{text}`: {e}"))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(format!(
                "filter `{text}`: unexpected `{}` after the condition",
                next.token
            ));
        }
        let predicate = Compiler { schema, text }.predicate(&expr)?;
        Ok(Filter {
            text: text.to_owned(),
            predicate,
        })
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `record` (of the filter's stream) meets the condition.
    pub fn matches(&self, schema: &StreamSchema, record: &Record) -> bool {
        self.predicate.eval(schema, record)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Predicate {
    fn eval(&self, schema: &StreamSchema, record: &Record) -> bool {
        match self {
            Predicate::And(a, b) => a.eval(schema, record) && b.eval(schema, record),
            Predicate::Or(a, b) => a.eval(schema, record) || b.eval(schema, record),
            Predicate::Not(a) => !a.eval(schema, record),
            Predicate::Compare { field, op, value } => {
                op.holds(compare(&schema.get(record, *field), value))
            }
            Predicate::In { field, values } => {
                let actual = schema.get(record, *field);
                values
                    .iter()
                    .any(|v| compare(&actual, v) == Ordering::Equal)
            }
        }
    }
}

/// Orders two values of one type: numbers numerically, strings as text.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.as_str().cmp(b.as_str()),
        _ => a.cmp(b),
    }
}

/// Turns a parsed SQL expression into a predicate over one stream's fields.
struct Compiler<'a> {
    schema: &'a StreamSchema,
    text: &'a str,
}

impl Compiler<'_> {
    fn fail(&self, problem: impl fmt::Display) -> String {
        format!("filter `{}`: {problem}", self.text)
    }

    fn predicate(&self, expr: &Expr) -> Result<Predicate, String> {
        match expr {
            Expr::Nested(inner) => self.predicate(inner),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Predicate::Not(Box::new(self.predicate(expr)?))),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(Predicate::And(
                    Box::new(self.predicate(left)?),
                    Box::new(self.predicate(right)?),
                )),
                BinaryOperator::Or => Ok(Predicate::Or(
                    Box::new(self.predicate(left)?),
                    Box::new(self.predicate(right)?),
                )),
                _ => self.comparison(left, op, right),
            },
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated,
                ..
            } => {
                let field = self.field(expr)?;
                let values = list
                    .iter()
                    .map(|item| self.literal(field, item))
                    .collect::<Result<Vec<_>, _>>()?;
                let test = Predicate::In { field, values };
                Ok(negate_if(*negated, test))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let field = self.field(expr)?;
                let test = Predicate::And(
                    Box::new(Predicate::Compare {
                        field,
                        op: Comparison::GtEq,
                        value: self.literal(field, low)?,
                    }),
                    Box::new(Predicate::Compare {
                        field,
                        op: Comparison::LtEq,
                        value: self.literal(field, high)?,
                    }),
                );
                Ok(negate_if(*negated, test))
            }
            Expr::IsTrue(inner) | Expr::IsNotFalse(inner) => self.flag(inner, true),
            Expr::IsFalse(inner) | Expr::IsNotTrue(inner) => self.flag(inner, false),
            Expr::Identifier(_) => self.flag(expr, true),
            other => Err(self.fail(format!(
                "`{other}` is not a condition this filter supports (compare a field with a \
                 literal; combine with AND, OR, NOT)"
            ))),
        }
    }

    /// A `bool` field tested for `value`.
    fn flag(&self, expr: &Expr, value: bool) -> Result<Predicate, String> {
        let field = self.field(expr)?;
        let ty = self.schema.fields()[field].ty;
        if ty != FieldType::Bool {
            return Err(self.fail(format!(
                "`{expr}` is a {ty} field, not a condition: compare it with a value"
            )));
        }
        Ok(Predicate::Compare {
            field,
            op: Comparison::Eq,
            value: Value::Bool(value),
        })
    }

    fn comparison(
        &self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
    ) -> Result<Predicate, String> {
        let op = match op {
            BinaryOperator::Eq => Comparison::Eq,
            BinaryOperator::NotEq => Comparison::NotEq,
            BinaryOperator::Lt => Comparison::Lt,
            BinaryOperator::LtEq => Comparison::LtEq,
            BinaryOperator::Gt => Comparison::Gt,
            BinaryOperator::GtEq => Comparison::GtEq,
            other => {
                return Err(self.fail(format!("the operator `{other}` is not supported")));
            }
        };
        let (field, literal, op) = match (self.field(left), self.field(right)) {
            (Ok(field), Err(_)) => (field, right, op),
            (Err(_), Ok(field)) => (field, left, op.flipped()),
            (Ok(_), Ok(_)) => {
                return Err(self.fail("compare a field with a literal, not with another field"))
            }
            (Err(problem), Err(_)) => return Err(problem),
        };
        Ok(Predicate::Compare {
            field,
            op,
            value: self.literal(field, literal)?,
        })
    }

    /// The position of the field `expr` names.
    fn field(&self, expr: &Expr) -> Result<usize, String> {
        let name = match expr {
            Expr::Identifier(ident) => &ident.value,
            Expr::Nested(inner) => return self.field(inner),
            other => return Err(self.fail(format!("`{other}` is not a field name"))),
        };
        self.schema.index(name).ok_or_else(|| {
            self.fail(format!(
                "`{name}` is not a field of the {} stream (its fields: {})",
                self.schema.kind(),
                self.schema.names()
            ))
        })
    }

    /// `expr` as a literal of field `field`'s type.
    fn literal(&self, field: usize, expr: &Expr) -> Result<Value, String> {
        let declared = &self.schema.fields()[field];
        let mismatch = || {
            self.fail(format!(
                "`{expr}` is not a {} value, which field `{}` holds",
                declared.ty, declared.name
            ))
        };
        let number = |text: &str| -> Result<Value, String> {
            let value = match declared.ty {
                FieldType::Id => text.parse().map(Value::Id).ok(),
                FieldType::Timestamp => text.parse().map(Value::Timestamp).ok(),
                FieldType::Int => text.parse().map(Value::Int).ok(),
                FieldType::Money => text.parse().map(Value::Money).ok(),
                FieldType::String | FieldType::Bool => None,
            };
            value.ok_or_else(mismatch)
        };
        match expr {
            Expr::Nested(inner) => self.literal(field, inner),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: inner,
            } => match inner.as_ref() {
                Expr::Value(v) => match &v.value {
                    Literal::Number(text, _) => number(&format!("-{text}")),
                    _ => Err(mismatch()),
                },
                _ => Err(mismatch()),
            },
            Expr::Value(v) => match (&v.value, declared.ty) {
                (Literal::Number(text, _), _) => number(text),
                (Literal::SingleQuotedString(text), FieldType::String) => Label::new(text)
                    .map(Value::String)
                    .ok_or_else(|| self.fail(format!("`{text}` is longer than any string field"))),
                (Literal::Boolean(b), FieldType::Bool) => Ok(Value::Bool(*b)),
                _ => Err(mismatch()),
            },
            _ => Err(mismatch()),
        }
    }
}

fn negate_if(negated: bool, predicate: Predicate) -> Predicate {
    if negated {
        Predicate::Not(Box::new(predicate))
    } else {
        predicate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declare::StreamSpec;
    use crate::event::StreamKind;

    fn schema() -> StreamSchema {
        StreamSpec::new("conversion_id", "ts")
            .parent("click_id")
            .field("conversion_id", FieldType::Id)
            .field("click_id", FieldType::Id)
            .field("ts", FieldType::Timestamp)
            .field("type", FieldType::String)
            .field("value_micros", FieldType::Money)
            .field("first", FieldType::Bool)
            .resolve(StreamKind::Conversion)
            .unwrap()
    }

    fn record(schema: &StreamSchema, kind: &str, value: i64, first: bool) -> Record {
        let mut record = Record::new(StreamKind::Conversion, 1, 5);
        schema.set(&mut record, 3, Value::String(Label::new(kind).unwrap()));
        schema.set(&mut record, 4, Value::Money(value));
        schema.set(&mut record, 5, Value::Bool(first));
        record
    }

    #[test]
    fn evaluates_the_subset() {
        let s = schema();
        let check = |text: &str, kind, value, first| {
            Filter::parse(&s, text)
                .unwrap()
                .matches(&s, &record(&s, kind, value, first))
        };
        assert!(check("type = 'order'", "order", 0, false));
        assert!(!check("type <> 'order'", "order", 0, false));
        assert!(check(
            "type = 'order' AND value_micros >= 10",
            "order",
            10,
            false
        ));
        assert!(!check(
            "(type = 'order') AND NOT value_micros >= 10",
            "order",
            10,
            false
        ));
        assert!(check("10 < value_micros", "x", 11, false));
        assert!(check("type IN ('a', 'b')", "b", 0, false));
        assert!(check("type NOT IN ('a', 'b')", "c", 0, false));
        assert!(check("value_micros BETWEEN 5 AND 10", "c", 5, false));
        assert!(check("first", "c", 5, true));
        assert!(check("first IS FALSE OR value_micros > -1", "c", 0, true));
        assert!(check("type > 'a'", "b", 0, false));
    }

    #[test]
    fn rejects_what_it_cannot_check() {
        let s = schema();
        for bad in [
            "type = ",
            "type = 'a' garbage",
            "value_micros = 'x'",
            "first = 1",
            "type LIKE 'a%'",
            "type = kind",
            "value_micros + 1 > 2",
            "type",
        ] {
            assert!(Filter::parse(&s, bad).is_err(), "{bad}");
        }
    }
}
