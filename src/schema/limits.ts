// Validation rules that bound what one GraphQL document may ask for:
// fields, aliases, depth and an estimated cost. Apollo Server and graphql-ws
// run the same rules, and Apollo reports a broken limit with the code
// GRAPHQL_VALIDATION_FAILED, as any invalid document. Each message names the
// limit and the setting that changes it.
import {
  BREAK,
  getNamedType,
  getNullableType,
  GraphQLError,
  isCompositeType,
  isInterfaceType,
  isListType,
  isObjectType,
  Kind,
  type ASTNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  visit,
} from "graphql";

import type { LimitsConfig } from "../config";

/**
 * Default maximum number of fields, aliases included, in one request. A
 * field such as `queue(name:)` costs a broker request each, so a thousand
 * aliases of it would cost a thousand.
 */
export const MAX_FIELDS_PER_REQUEST = 200;

type RequestLimits = Pick<
  LimitsConfig,
  "maxFields" | "maxAliases" | "maxDepth" | "maxCost" | "costListSize"
>;

/** Returns every limit rule, configured from the settings. */
export function requestLimitRules(limits: RequestLimits): ValidationRule[] {
  return [
    maxFieldsRule(limits.maxFields),
    maxAliasesRule(limits.maxAliases),
    maxDepthRule(limits.maxDepth),
    maxCostRule(limits.maxCost, limits.costListSize),
  ];
}

/**
 * Rejects a document with more than `limit` field selections. It counts
 * them all when validation enters the document, before any other rule
 * sees a selection set: graphql-js's rule for overlapping fields gives up
 * on a large selection set with a bare "Validation aborted.", which would
 * otherwise be the only error of a document over this limit.
 * NOTE: a fragment's fields count once however often it is spread, so a
 * document of many spreads can still cost more than this limit; the cost
 * rule counts every spread.
 */
export function maxFieldsRule(limit = MAX_FIELDS_PER_REQUEST): ValidationRule {
  return (context) => ({
    Document(document) {
      const over = nthField(document, limit + 1);
      if (!over) return;
      context.reportError(
        limitError(
          `The request selects more than ${limit} fields (aliases ` +
            `included), the limit set by MAX_FIELDS; split it into ` +
            `smaller requests.`,
          over,
          limit,
          "MAX_FIELDS",
        ),
      );
    },
  });
}

/** Returns the n-th field node of a document, or null when it has fewer. */
function nthField(document: DocumentNode, n: number): FieldNode | null {
  let seen = 0;
  let found: FieldNode | null = null;
  visit(document, {
    Field(node) {
      seen += 1;
      if (seen < n) return undefined;
      found = node;
      return BREAK;
    },
  });
  return found;
}

/** Rejects a document with more than `limit` aliased fields. */
export function maxAliasesRule(limit: number): ValidationRule {
  return (context) => {
    let aliases = 0;
    return {
      Field(node) {
        if (!node.alias) return;
        aliases += 1;
        if (aliases === limit + 1) {
          context.reportError(
            limitError(
              `The request uses more than ${limit} aliases, the limit set ` +
                `by MAX_ALIASES; split it into smaller requests.`,
              node,
              limit,
              "MAX_ALIASES",
            ),
          );
        }
      },
    };
  };
}

/**
 * Rejects an operation whose selections nest deeper than `limit` fields,
 * with fragments expanded where they are spread. `{ viewer { email } }`
 * has depth 2.
 */
export function maxDepthRule(limit: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const depth = measureDepth(context, operation.selectionSet, new Set());
      if (depth > limit) {
        context.reportError(
          limitError(
            `The operation ${describe(operation.name?.value)}nests ${depth} ` +
              `fields deep, above the limit of ${limit} set by ` +
              `MAX_QUERY_DEPTH; request fewer nested levels.`,
            operation,
            limit,
            "MAX_QUERY_DEPTH",
          ),
        );
      }
    },
  });
}

/**
 * Rejects an operation whose estimated cost exceeds `limit`. Each field
 * costs 1, times the size of every list it is nested in. A list's size is
 * its literal `limit` argument when it has one and `listSize` otherwise,
 * so `{ accounts { queues { name } } }` costs 1 + 10 + 100 with the
 * default list size of 10. Fragments count each time they are spread.
 * Counting stops once the limit is passed, so a document built to explode
 * through nested spreads costs the rule no more than the limit.
 */
export function maxCostRule(limit: number, listSize: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const root = rootType(context.getSchema(), operation.operation);
      if (!root) return;
      const tally: CostTally = { context, listSize, limit, cost: 0 };
      addSelectionCost(tally, operation.selectionSet, root, 1, new Set());
      if (tally.cost > limit) {
        context.reportError(
          limitError(
            `The operation ${describe(operation.name?.value)}has an ` +
              `estimated cost above the limit of ${limit} set by ` +
              `MAX_QUERY_COST (each field costs 1, times the size of the ` +
              `lists it is nested in); select fewer fields or lower the ` +
              `limit arguments.`,
            operation,
            limit,
            "MAX_QUERY_COST",
          ),
        );
      }
    },
  });
}

function measureDepth(
  context: ValidationContext,
  selectionSet: SelectionSetNode,
  spreading: Set<string>,
  fragmentDepths: Map<string, number> = new Map(),
): number {
  let deepest = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (isIntrospection(selection)) continue;
      const below = selection.selectionSet
        ? measureDepth(context, selection.selectionSet, spreading, fragmentDepths)
        : 0;
      deepest = Math.max(deepest, 1 + below);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      deepest = Math.max(
        deepest,
        measureDepth(context, selection.selectionSet, spreading, fragmentDepths),
      );
    } else {
      const name = selection.name.value;
      // A fragment's depth does not depend on where it is spread, so each
      // is measured once, however often the document spreads it.
      if (!fragmentDepths.has(name)) {
        const fragment = enterFragment(context, name, spreading);
        if (!fragment) continue;
        fragmentDepths.set(
          name,
          measureDepth(context, fragment.selectionSet, spreading, fragmentDepths),
        );
        spreading.delete(name);
      }
      deepest = Math.max(deepest, fragmentDepths.get(name)!);
    }
  }
  return deepest;
}

interface CostTally {
  context: ValidationContext;
  listSize: number;
  limit: number;
  cost: number;
}

function addSelectionCost(
  tally: CostTally,
  selectionSet: SelectionSetNode,
  parent: GraphQLCompositeType,
  multiplier: number,
  spreading: Set<string>,
): void {
  for (const selection of selectionSet.selections) {
    if (tally.cost > tally.limit) return;
    if (selection.kind === Kind.FIELD) {
      addFieldCost(tally, selection, parent, multiplier, spreading);
      continue;
    }
    const fragment =
      selection.kind === Kind.INLINE_FRAGMENT
        ? selection
        : enterFragment(tally.context, selection.name.value, spreading);
    if (!fragment) continue;
    const condition = fragment.typeCondition
      ? tally.context.getSchema().getType(fragment.typeCondition.name.value)
      : parent;
    if (condition && isCompositeType(condition)) {
      addSelectionCost(tally, fragment.selectionSet, condition, multiplier, spreading);
    }
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      spreading.delete(selection.name.value);
    }
  }
}

function addFieldCost(
  tally: CostTally,
  node: FieldNode,
  parent: GraphQLCompositeType,
  multiplier: number,
  spreading: Set<string>,
): void {
  if (isIntrospection(node)) return;
  tally.cost += multiplier;
  const definition = findField(parent, node.name.value);
  if (!definition || !node.selectionSet) return;
  const child = getNamedType(definition.type);
  if (!isCompositeType(child)) return;
  const nullable = getNullableType(definition.type);
  const size = isListType(nullable) ? listLength(node, tally.listSize) : 1;
  addSelectionCost(tally, node.selectionSet, child, multiplier * size, spreading);
}

/** Returns a list field's literal `limit` argument, or the default size. */
function listLength(node: FieldNode, listSize: number): number {
  const argument = node.arguments?.find((arg) => arg.name.value === "limit");
  if (argument?.value.kind === Kind.INT) {
    return Math.max(1, Number(argument.value.value));
  }
  return listSize;
}

function findField(
  parent: GraphQLCompositeType,
  name: string,
): GraphQLField<unknown, unknown> | undefined {
  if (isObjectType(parent) || isInterfaceType(parent)) {
    return parent.getFields()[name];
  }
  return undefined;
}

/**
 * Schema introspection (`__schema`, `__type`) is left out of depth and
 * cost: it reads the schema in memory, the standard introspection query
 * alone nests 15 fields deep, and graphql-js's own
 * MaxIntrospectionDepthRule (among the specified rules since graphql 16.9)
 * bounds its nesting.
 */
function isIntrospection(node: FieldNode): boolean {
  return node.name.value === "__schema" || node.name.value === "__type";
}

/**
 * Returns the fragment to expand, or undefined for an unknown fragment or
 * one already being expanded (a cycle, which NoFragmentCycles reports).
 */
function enterFragment(
  context: ValidationContext,
  name: string,
  spreading: Set<string>,
): FragmentDefinitionNode | undefined {
  if (spreading.has(name)) return undefined;
  const fragment = context.getFragment(name);
  if (!fragment) return undefined;
  spreading.add(name);
  return fragment;
}

function rootType(
  schema: GraphQLSchema,
  operation: "query" | "mutation" | "subscription",
) {
  if (operation === "query") return schema.getQueryType();
  if (operation === "mutation") return schema.getMutationType();
  return schema.getSubscriptionType();
}

function describe(name: string | undefined): string {
  return name ? `"${name}" ` : "";
}

function limitError(
  message: string,
  node: ASTNode,
  limit: number,
  setting: string,
): GraphQLError {
  return new GraphQLError(message, {
    nodes: node,
    extensions: { limit, setting },
  });
}
