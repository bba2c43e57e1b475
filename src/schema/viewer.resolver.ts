import { Ctx, Query, Resolver } from "type-graphql";

import { requireViewer, type GraphQLContext } from "./context";
import { Viewer } from "./types";

@Resolver(() => Viewer)
export class ViewerResolver {
  @Query(() => Viewer, { description: "The caller, from the bearer token." })
  viewer(@Ctx() context: GraphQLContext): Viewer {
    const { email, isAdmin } = requireViewer(context);
    return { email, isAdmin };
  }
}
