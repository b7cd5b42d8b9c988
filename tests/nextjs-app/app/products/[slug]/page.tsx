import { readData } from '../../../lib/data';

export const revalidate = 3600;

export function generateStaticParams() {
  return [{ slug: 'a' }, { slug: 'b' }];
}

export default async function Product({ params }: { params: Promise<{ slug: string }> }) {
  const { slug } = await params;
  const data = readData();
  return (
    <main id="product">
      product {slug} data: {data.products[slug] ?? 'none'}
    </main>
  );
}
